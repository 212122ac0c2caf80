//! The config file of named profiles, and `hookwire config` that writes it.
//!
//! A profile names an endpoint, an admin token and an output format, so that `--profile prod` (or
//! `HOOKWIRE_PROFILE=prod`, or the file's `default_profile`) stands for all three:
//!
//! ```toml
//! default_profile = "local"
//!
//! [profiles.local]
//! endpoint = "http://127.0.0.1:50051"
//! token = "..."
//! output = "table"
//! ```
//!
//! Each value is taken from the first place that has it: the command-line flag, then its environment variable,
//! then the profile, then the built-in default. The file is `--config FILE`, else `$HOOKWIRE_CONFIG`, else
//! `hookwire/config.toml` in the user's config folder (`$XDG_CONFIG_HOME`, else `~/.config`, on Unix and macOS).
//! It holds tokens, so it is written readable by its owner only (0600).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::output::{Format, print_document};
use crate::{GlobalArgs, GlobalFlags};

pub const EXAMPLES: &str = "\
Examples:
  hookwire config set-profile local --endpoint http://127.0.0.1:50051 --token <root token> --default
  hookwire config set-profile prod --endpoint https://hooks.example.com:50051 --token <token> --output table
  hookwire config list --output table
  hookwire --profile prod group list
  hookwire config use prod";

/// Where the server is when nothing else says.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:50051";
/// The variables that stand in for the global flags.
pub const ENDPOINT_VARIABLE: &str = "HOOKWIRE_ENDPOINT";
pub const TOKEN_VARIABLE: &str = "HOOKWIRE_TOKEN";
pub const OUTPUT_VARIABLE: &str = "HOOKWIRE_OUTPUT";
pub const PROFILE_VARIABLE: &str = "HOOKWIRE_PROFILE";
pub const CONFIG_VARIABLE: &str = "HOOKWIRE_CONFIG";

const LIST_COLUMNS: &[&str] = &["name", "default", "endpoint", "token", "output"];

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Create a profile, or change one: the global --endpoint, --token and --output given here are stored in it
    /// (only those given on this command line; the others it had stay). The first profile becomes the default.
    /// Prints the profile, its token masked
    #[command(after_help = "\
Examples:
  hookwire config set-profile local --endpoint http://127.0.0.1:50051 --token <root token>
  hookwire config set-profile prod --endpoint https://hooks.example.com:50051 --token <token> --default
  hookwire config set-profile prod --output table")]
    SetProfile {
        /// The profile's name
        name: String,
        /// Also make it the default profile, used when neither --profile nor HOOKWIRE_PROFILE names one
        #[arg(long)]
        default: bool,
    },
    /// List the profiles, tokens masked; prints an array of {"name", "default", "endpoint", "token", "output"}
    #[command(after_help = "\
Examples:
  hookwire config list
  hookwire config list --output table")]
    List,
    /// Make a profile the default one
    #[command(after_help = "Example:\n  hookwire config use prod")]
    Use {
        /// The profile's name
        name: String,
    },
    /// Print the config file's path (it may not exist yet)
    #[command(after_help = "\
Examples:
  hookwire config path
  hookwire --config ./hookwire.toml config path")]
    Path,
}

/// The config file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when neither `--profile` nor `HOOKWIRE_PROFILE` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    /// The profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// A named set of global options; each one left out falls back to its built-in default.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The server's gRPC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `json` or `table`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// An environment variable's value; unset, empty and non-UTF-8 values count as absent.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The config file's path: `--config`, else `$HOOKWIRE_CONFIG`, else `hookwire/config.toml` in the user's config
/// folder.
pub fn config_path(flags: &GlobalFlags, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<PathBuf> {
    if let Some(path) = &flags.config {
        return Ok(path.clone());
    }
    if let Some(path) = env(CONFIG_VARIABLE) {
        return Ok(PathBuf::from(path));
    }
    use etcetera::BaseStrategy;
    let strategy = etcetera::choose_base_strategy()
        .context("cannot find the home folder for the config file: pass --config FILE or set HOOKWIRE_CONFIG")?;
    Ok(strategy.config_dir().join("hookwire").join("config.toml"))
}

/// Reads the config file; `None` when it does not exist. A malformed file is an error naming the file and line.
pub fn load(path: &Path) -> anyhow::Result<Option<ConfigFile>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read the config file {}", path.display())),
    };
    parse(&text).map(Some).map_err(|error| {
        let location = match error.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
                format!(", line {line}, column {column}")
            }
            None => String::new(),
        };
        anyhow::anyhow!("the config file {}{location}: {}", path.display(), error.message().trim_end())
    })
}

fn parse(text: &str) -> Result<ConfigFile, toml::de::Error> {
    toml::from_str(text)
}

/// Writes the config file, readable and writable by its owner only, replacing the old one in one step (a crash
/// leaves the old file or the new one, never half of one).
fn save(path: &Path, config: &ConfigFile) -> anyhow::Result<()> {
    let text = toml::to_string(config).context("cannot write the config as TOML")?;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_folder(&folder).with_context(|| format!("cannot create the config folder {}", folder.display()))?;
    // A named temporary file is created with mode 0600 on Unix; renaming it keeps that mode.
    let mut file = tempfile::NamedTempFile::new_in(&folder)
        .with_context(|| format!("cannot write the config file {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write the config file {}", path.display()))?;
    file.persist(path).with_context(|| format!("cannot write the config file {}", path.display()))?;
    Ok(())
}

#[cfg(unix)]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder)
}

#[cfg(not(unix))]
fn create_private_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)
}

/// Resolves the global options: each from its flag, else its environment variable, else the selected profile,
/// else the built-in default. The profile is `--profile`, else `$HOOKWIRE_PROFILE`, else the file's
/// `default_profile`; none when none of these names one.
pub fn resolve(flags: &GlobalFlags, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<GlobalArgs> {
    let profile = selected_profile(flags, env)?.unwrap_or_default();
    let endpoint = flags
        .endpoint
        .clone()
        .or_else(|| env(ENDPOINT_VARIABLE))
        .or(profile.endpoint)
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let token = flags.token.clone().or_else(|| env(TOKEN_VARIABLE)).or(profile.token);
    let output = match (flags.output, env(OUTPUT_VARIABLE)) {
        (Some(output), _) => output,
        (None, Some(text)) => parse_format(&text).with_context(|| format!("${OUTPUT_VARIABLE}"))?,
        (None, None) => profile.output.map(|text| parse_format(&text)).transpose()?.unwrap_or(Format::Json),
    };
    Ok(GlobalArgs { endpoint, token, output })
}

/// The profile that `--profile`, `$HOOKWIRE_PROFILE` or the file's `default_profile` names, its `output` checked.
fn selected_profile(flags: &GlobalFlags, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<Profile>> {
    let path = config_path(flags, env)?;
    let named = flags.profile.clone().or_else(|| env(PROFILE_VARIABLE));
    let config = load(&path)?;
    let Some(name) = named.or_else(|| config.as_ref().and_then(|config| config.default_profile.clone())) else {
        return Ok(None);
    };
    let Some(config) = config else {
        bail!(
            "profile `{name}`: the config file {} does not exist; create the profile with `hookwire config \
             set-profile {name} --endpoint URL --token TOKEN`",
            path.display()
        );
    };
    let profile = find_profile(&config, &name, &path)?.clone();
    if let Some(output) = &profile.output {
        parse_format(output).with_context(|| format!("profile `{name}` in {}: output", path.display()))?;
    }
    Ok(Some(profile))
}

/// The profile `name`, or an error naming it, the file and the profiles it has.
fn find_profile<'a>(config: &'a ConfigFile, name: &str, path: &Path) -> anyhow::Result<&'a Profile> {
    config.profiles.get(name).with_context(|| {
        let mut message = format!("no profile `{name}` in the config file {}", path.display());
        if config.profiles.is_empty() {
            message.push_str(" (it has none)");
        } else {
            let names: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
            let _ = write!(message, " (its profiles: {})", names.join(", "));
        }
        message
    })
}

fn parse_format(text: &str) -> anyhow::Result<Format> {
    Format::from_str(text, true).map_err(|_| anyhow::anyhow!("`{text}` is not one of json, table"))
}

fn format_name(format: Format) -> String {
    format.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
}

/// A token as `config list` shows it: enough to tell tokens apart, not enough to use one.
pub fn mask_token(token: &str) -> String {
    let characters: Vec<char> = token.chars().collect();
    if characters.len() < 16 {
        return "****".to_owned();
    }
    let head: String = characters[..4].iter().collect();
    let tail: String = characters[characters.len() - 4..].iter().collect();
    format!("{head}...{tail}")
}

fn profile_json(name: &str, profile: &Profile, config: &ConfigFile) -> Value {
    json!({
        "name": name,
        "default": config.default_profile.as_deref() == Some(name),
        "endpoint": profile.endpoint,
        "token": profile.token.as_deref().map(mask_token),
        "output": profile.output,
    })
}

/// Runs a `config` command. Only the flags given on the command line count here: `set-profile` stores those, and
/// the environment never ends up in the file.
pub fn run(command: ConfigCommand, flags: &GlobalFlags) -> anyhow::Result<()> {
    let path = config_path(flags, &env_var)?;
    // The output format of these commands does not come from a profile: they must work on a broken file.
    let format = match flags.output {
        Some(format) => format,
        None => env_var(OUTPUT_VARIABLE).map(|text| parse_format(&text)).transpose()?.unwrap_or(Format::Json),
    };
    match command {
        ConfigCommand::SetProfile { name, default } => {
            if name.trim().is_empty() {
                bail!("set-profile: the profile name is empty");
            }
            let mut config = load(&path)?.unwrap_or_default();
            let profile = config.profiles.entry(name.clone()).or_default();
            if let Some(endpoint) = &flags.endpoint {
                profile.endpoint = Some(endpoint.clone());
            }
            if let Some(token) = &flags.token {
                profile.token = Some(token.clone());
            }
            if let Some(output) = flags.output {
                profile.output = Some(format_name(output));
            }
            let profile = profile.clone();
            if default || config.default_profile.is_none() {
                config.default_profile = Some(name.clone());
            }
            save(&path, &config)?;
            print_document(format, &profile_json(&name, &profile, &config), LIST_COLUMNS)?;
        }
        ConfigCommand::List => {
            let config = load(&path)?.unwrap_or_default();
            let profiles: Vec<Value> =
                config.profiles.iter().map(|(name, profile)| profile_json(name, profile, &config)).collect();
            print_document(format, &Value::Array(profiles), LIST_COLUMNS)?;
        }
        ConfigCommand::Use { name } => {
            let Some(mut config) = load(&path)? else {
                bail!(
                    "no profile `{name}`: the config file {} does not exist; create the profile with `hookwire \
                     config set-profile {name} --endpoint URL --token TOKEN`",
                    path.display()
                );
            };
            let profile = find_profile(&config, &name, &path)?.clone();
            config.default_profile = Some(name.clone());
            save(&path, &config)?;
            print_document(format, &profile_json(&name, &profile, &config), LIST_COLUMNS)?;
        }
        ConfigCommand::Path => println!("{}", path.display()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> GlobalFlags {
        GlobalFlags { endpoint: None, token: None, output: None, field: None, profile: None, config: None }
    }

    /// A config file in a temporary folder, and an environment that points `HOOKWIRE_CONFIG` at it.
    struct Fixture {
        _folder: tempfile::TempDir,
        path: PathBuf,
        variables: BTreeMap<String, String>,
    }

    impl Fixture {
        fn new(file: &str) -> Fixture {
            let folder = tempfile::tempdir().unwrap();
            let path = folder.path().join("config.toml");
            std::fs::write(&path, file).unwrap();
            let mut variables = BTreeMap::new();
            variables.insert(CONFIG_VARIABLE.to_owned(), path.display().to_string());
            Fixture { _folder: folder, path, variables }
        }

        fn with(mut self, name: &str, value: &str) -> Fixture {
            self.variables.insert(name.to_owned(), value.to_owned());
            self
        }

        fn resolve(&self, flags: &GlobalFlags) -> anyhow::Result<GlobalArgs> {
            resolve(flags, &|name| self.variables.get(name).cloned())
        }
    }

    const TWO_PROFILES: &str = r#"
default_profile = "local"

[profiles.local]
endpoint = "http://127.0.0.1:7000"
token = "local-token"
output = "table"

[profiles.prod]
endpoint = "https://prod.example.com:50051"
token = "prod-token"
"#;

    #[test]
    fn flag_beats_environment_beats_profile_beats_default() {
        let fixture = Fixture::new(TWO_PROFILES);
        let from_profile = fixture.resolve(&flags()).unwrap();
        assert_eq!(from_profile.endpoint, "http://127.0.0.1:7000");
        assert_eq!(from_profile.token.as_deref(), Some("local-token"));
        assert_eq!(from_profile.output, Format::Table);

        let fixture = fixture.with(ENDPOINT_VARIABLE, "http://env:1").with(OUTPUT_VARIABLE, "json");
        let from_environment = fixture.resolve(&flags()).unwrap();
        assert_eq!(from_environment.endpoint, "http://env:1");
        assert_eq!(from_environment.token.as_deref(), Some("local-token"));
        assert_eq!(from_environment.output, Format::Json);

        let mut given = flags();
        given.endpoint = Some("http://flag:2".to_owned());
        given.output = Some(Format::Table);
        let from_flags = fixture.resolve(&given).unwrap();
        assert_eq!(from_flags.endpoint, "http://flag:2");
        assert_eq!(from_flags.output, Format::Table);
    }

    #[test]
    fn the_profile_is_picked_by_flag_then_environment_then_the_file() {
        let fixture = Fixture::new(TWO_PROFILES).with(PROFILE_VARIABLE, "prod");
        let from_environment = fixture.resolve(&flags()).unwrap();
        assert_eq!(from_environment.endpoint, "https://prod.example.com:50051");
        // prod sets no output: the built-in default, not the default profile's.
        assert_eq!(from_environment.output, Format::Json);

        let mut given = flags();
        given.profile = Some("local".to_owned());
        assert_eq!(fixture.resolve(&given).unwrap().token.as_deref(), Some("local-token"));
    }

    #[test]
    fn without_a_file_or_profile_the_built_in_defaults_hold() {
        let fixture = Fixture::new("");
        std::fs::remove_file(&fixture.path).unwrap();
        let resolved = fixture.resolve(&flags()).unwrap();
        assert_eq!(resolved.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(resolved.token, None);
        assert_eq!(resolved.output, Format::Json);
    }

    #[test]
    fn an_unknown_profile_is_named_with_the_file_and_the_profiles_it_has() {
        let fixture = Fixture::new(TWO_PROFILES).with(PROFILE_VARIABLE, "staging");
        let message = format!("{:#}", fixture.resolve(&flags()).unwrap_err());
        assert!(message.contains("`staging`"), "{message}");
        assert!(message.contains(&fixture.path.display().to_string()), "{message}");
        assert!(message.contains("local, prod"), "{message}");

        let dangling = Fixture::new("default_profile = \"gone\"\n");
        let message = format!("{:#}", dangling.resolve(&flags()).unwrap_err());
        assert!(message.contains("`gone`") && message.contains("(it has none)"), "{message}");
    }

    #[test]
    fn a_malformed_file_is_named_with_its_line() {
        let fixture = Fixture::new("default_profile = \"local\"\n[profiles.local]\nendpoint = http://x\n");
        let message = format!("{:#}", fixture.resolve(&flags()).unwrap_err());
        assert!(message.contains(&fixture.path.display().to_string()), "{message}");
        assert!(message.contains("line 3"), "{message}");

        let typo = Fixture::new("[profiles.local]\nendpoint = \"http://x\"\ntokn = \"t\"\n");
        let message = format!("{:#}", typo.resolve(&flags()).unwrap_err());
        assert!(message.contains("line 3") && message.contains("tokn"), "{message}");
    }

    #[test]
    fn a_bad_output_is_named_where_it_was_set() {
        let fixture = Fixture::new("default_profile = \"a\"\n[profiles.a]\noutput = \"yaml\"\n");
        let message = format!("{:#}", fixture.resolve(&flags()).unwrap_err());
        assert!(message.contains("profile `a`") && message.contains("`yaml`"), "{message}");

        let fixture = Fixture::new("").with(OUTPUT_VARIABLE, "xml");
        let message = format!("{:#}", fixture.resolve(&flags()).unwrap_err());
        assert!(message.contains("HOOKWIRE_OUTPUT") && message.contains("`xml`"), "{message}");
    }

    #[test]
    fn tokens_are_masked() {
        assert_eq!(mask_token("hwa_0123456789abcdefXYZW"), "hwa_...XYZW");
        assert_eq!(mask_token("short-root"), "****");
        assert!(!mask_token("hwa_0123456789abcdef").contains("0123456789"));
    }
}
