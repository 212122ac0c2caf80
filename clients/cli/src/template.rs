//! `hookwire template`: the gallery of ready integrations (ThingSpeak, InfluxDB, Slack, ...), the same the web
//! console offers. `hookwire webhook create --template NAME --set key=value` fills one in and creates it.

use anyhow::Context;
use clap::Subcommand;
use hookwire_client::templates;
use serde_json::{Value, json};

use crate::GlobalArgs;
use crate::output::print_document;

pub const EXAMPLES: &str = "\
Examples:
  hookwire template list --output table
  hookwire template show thingspeak
  hookwire webhook create --group grp_0123456789abcdef --template thingspeak --set event=temp --set api_key=XXXX";

const COLUMNS: &[&str] = &["name", "title", "fields", "description"];
const FIELD_COLUMNS: &[&str] = &["key", "label", "required", "secret", "default", "help"];

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List the templates and the fields each asks for
    #[command(after_help = "Example:\n  hookwire template list --output table")]
    List,
    /// Show a template's fields and the definition it fills in
    #[command(after_help = "Example:\n  hookwire template show thingspeak")]
    Show {
        /// The template's name, as `template list` prints it
        name: String,
    },
}

fn field_json(field: &templates::TemplateField) -> Value {
    json!({
        "key": field.key,
        "label": field.label,
        "required": field.default.is_none(),
        "secret": field.secret,
        "default": field.default.unwrap_or(""),
        "help": field.help,
    })
}

pub async fn run(command: TemplateCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    match command {
        TemplateCommand::List => {
            let list: Vec<Value> = templates::TEMPLATES
                .iter()
                .map(|template| {
                    let fields: Vec<&str> = template.fields.iter().map(|field| field.key).collect();
                    json!({
                        "name": template.name,
                        "title": template.title,
                        "description": template.description,
                        "fields": fields.join(","),
                    })
                })
                .collect();
            print_document(global.output, &Value::Array(list), COLUMNS)?;
        }
        TemplateCommand::Show { name } => {
            let template = templates::find(&name)?;
            let fields: Vec<Value> = template.fields.iter().map(field_json).collect();
            let definition: Value = serde_json::from_str(template.definition).context("the template's definition")?;
            let document = json!({
                "name": template.name,
                "title": template.title,
                "description": template.description,
                "fields": fields,
                "definition": definition,
            });
            print_document(global.output, &document, FIELD_COLUMNS)?;
        }
    }
    Ok(())
}

/// Fills a template in from `--set KEY=VALUE` pairs: the definition to create.
pub fn definition(name: &str, pairs: &[String]) -> anyhow::Result<String> {
    let template = templates::find(name)?;
    let mut values = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (key, value) = pair.split_once('=').with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
        values.push((key.to_owned(), value.to_owned()));
    }
    template.render(&values).map_err(|error| anyhow::anyhow!("--set {error}"))
}
