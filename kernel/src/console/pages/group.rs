//! A group's other pages: its devices (and their actions), the live event stream and the template gallery.

use super::*;

pub(super) async fn devices_page(
    console: &Console,
    signed: &Signed,
    request: &Request,
    group_id: &GroupId,
) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let page_index = page_number(request);
    let page = Page::new(page_index.saturating_mul(PAGE_SIZE), PAGE_SIZE, Order::Created, false)?;
    let (devices, total) = console.kernel.list_devices_page(group_id, "", &page).await?;
    let viewer = signed.viewer();
    let mut body = group_tabs(group_id, "Devices");
    if viewer.can_edit() {
        let _ = write!(
            body,
            r#"<form method="post" action="/groups/{group_id}/devices" class="card inline-form">{}<label for="device-name">New device named</label><input id="device-name" name="name" required maxlength="200"><button type="submit" id="create-device">Create device</button></form>"#,
            viewer.csrf_field()
        );
    }
    body.push_str(
        r#"<table class="list" id="devices"><thead><tr><th scope="col">name</th><th scope="col">id</th><th scope="col">created</th><th scope="col">actions</th></tr></thead><tbody>"#,
    );
    for device in &devices {
        let actions = if viewer.can_edit() {
            format!(
                r#"<form method="post" action="/devices/{id}/rename" class="inline">{csrf}<label class="visually-hidden" for="rename-{id}">new name</label><input id="rename-{id}" name="name" value="{name}" maxlength="200"><button type="submit">Rename</button></form> {rotate}"#,
                id = device.id,
                csrf = viewer.csrf_field(),
                name = escape(&device.name),
                rotate = viewer.button(&format!("/devices/{}/rotate", device.id), "Rotate token", "")
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            r#"<tr data-device="{id}"><td>{name}</td><td><code>{id}</code></td><td>{created}</td><td>{actions}</td></tr>"#,
            id = device.id,
            name = escape(&device.name),
            created = time::iso8601_ms(device.created_at),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&pager(&format!("/groups/{group_id}/devices"), page_index, total, PAGE_SIZE));
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("devices".into(), format!("/groups/{group_id}/devices")));
    Ok(render("Devices", signed, &crumbs, &body))
}

pub(super) async fn create_device(
    console: &Console,
    signed: &Signed,
    request: &Request,
    group_id: &GroupId,
) -> Result<Response> {
    let name = request.form("name").unwrap_or("").trim().to_owned();
    let (device, token) = console.kernel.create_device(group_id, DeviceFields { name, ..Default::default() }).await?;
    let group = console.kernel.get_group(group_id).await?;
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("devices".into(), format!("/groups/{group_id}/devices")));
    let what = format!("Device {} created. Its token:", device.id);
    Ok(secret_page(signed, &crumbs, "Device created", &what, &token, &format!("/groups/{group_id}/devices")))
}

pub(super) async fn device_action(
    console: &Console,
    signed: &Signed,
    request: &Request,
    device: &str,
    action: &str,
) -> Result<Response> {
    let id = parse_id("device", device, DeviceId::parse)
        .map_err(|_| KernelError::NotFound(format!("device {} not found", short(device))))?;
    console.kernel.require_object(&signed.who, Object::Device(&id), Role::Editor).await?;
    let row = console.kernel.get_device(&id).await?;
    let group_id = row.group_id.clone();
    let back = format!("/groups/{group_id}/devices");
    match action {
        "rename" => {
            let name = request.form("name").unwrap_or("").trim().to_owned();
            console.kernel.update_device(row, DeviceUpdate { name: Some(name), ..Default::default() }).await?;
            Ok(redirect(&back))
        }
        "rotate" => {
            let (device, token) = console.kernel.rotate_device_token(row).await?;
            let group = console.kernel.get_group(&group_id).await?;
            let mut crumbs = group_crumbs(&group_id, &group.name);
            crumbs.push(("devices".into(), back.clone()));
            let what = format!("Device {} has a new token; the old one is refused from now on:", device.id);
            Ok(secret_page(signed, &crumbs, "Token rotated", &what, &token, &back))
        }
        _ => Err(KernelError::NotFound(format!("no action {}", short(action)))),
    }
}

pub(super) async fn live_page(
    console: &Console,
    signed: &Signed,
    request: &Request,
    group_id: &GroupId,
) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let prefix = request.query("prefix").unwrap_or("");
    let mut body = group_tabs(group_id, "Live events");
    let _ = write!(
        body,
        r#"<form method="get" action="/groups/{group_id}/live" class="filters"><label for="prefix">event name prefix</label><input id="prefix" name="prefix" value="{prefix_html}" maxlength="64"><button type="submit">Follow</button></form>
<p id="live-status" role="status" aria-live="polite">connecting…</p>
<table class="list" id="live-events" data-stream="/groups/{group_id}/live/stream?prefix={prefix_url}"><thead><tr><th scope="col">published</th><th scope="col">name</th><th scope="col">data</th><th scope="col">device</th></tr></thead><tbody></tbody></table>"#,
        prefix_html = escape(prefix),
        prefix_url = url_encode(prefix),
    );
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("live".into(), format!("/groups/{group_id}/live")));
    Ok(render("Live events", signed, &crumbs, &body))
}

pub(super) async fn gallery_page(console: &Console, signed: &Signed, group_id: &GroupId) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let mut body = group_tabs(group_id, "Templates");
    body.push_str(r#"<ul class="gallery" id="templates">"#);
    for template in templates::TEMPLATES {
        let _ = write!(
            body,
            r#"<li class="card"><h2><a href="/groups/{group_id}/templates/{name}">{title}</a></h2><p>{description}</p></li>"#,
            name = template.name,
            title = escape(template.title),
            description = escape(template.description),
        );
    }
    body.push_str("</ul>");
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("templates".into(), format!("/groups/{group_id}/templates")));
    Ok(render("Templates", signed, &crumbs, &body))
}

pub(super) async fn template_page(
    console: &Console,
    signed: &Signed,
    group_id: &GroupId,
    template: &templates::Template,
    values: &[(String, String)],
    error: Option<String>,
) -> Result<Response> {
    let group = console.kernel.get_group(group_id).await?;
    let mut body = String::new();
    if let Some(error) = &error {
        body.push_str(&html::message("error", error));
    }
    let _ = write!(
        body,
        r#"<p>{}</p><form method="post" action="/groups/{group_id}/templates/{}" class="card" id="template-form">{}"#,
        escape(template.description),
        template.name,
        signed.viewer().csrf_field()
    );
    for field in template.fields {
        let value = if field.secret {
            String::new()
        } else {
            values
                .iter()
                .rev()
                .find(|(key, _)| key == field.key)
                .map(|(_, value)| value.clone())
                .or_else(|| field.default.map(str::to_owned))
                .unwrap_or_default()
        };
        let invalid = error.as_deref().is_some_and(|error| error.starts_with(&format!("{}:", field.key)));
        let _ = write!(
            body,
            r#"<label for="field-{key}">{label}</label><input id="field-{key}" name="{key}" type="{kind}" value="{value}"{required}{invalid} aria-describedby="help-{key}" autocomplete="off"><p class="help" id="help-{key}">{help}</p>"#,
            key = field.key,
            label = escape(field.label),
            kind = if field.secret { "password" } else { "text" },
            value = escape(&value),
            required = if field.default.is_none() { " required" } else { "" },
            invalid = if invalid { r#" aria-invalid="true""# } else { "" },
            help = escape(field.help),
        );
    }
    body.push_str(r#"<button type="submit" id="create-from-template">Create webhook</button></form>"#);
    let mut crumbs = group_crumbs(group_id, &group.name);
    crumbs.push(("templates".into(), format!("/groups/{group_id}/templates")));
    let response = render(template.title, signed, &crumbs, &body);
    Ok(if error.is_some() {
        let mut response = response;
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    } else {
        response
    })
}

pub(super) async fn create_from_template(
    console: &Console,
    signed: &Signed,
    request: &Request,
    group_id: &GroupId,
    template: &templates::Template,
) -> Result<Response> {
    let values: Vec<(String, String)> = template
        .fields
        .iter()
        .filter_map(|field| request.form(field.key).map(|value| (field.key.to_owned(), value.to_owned())))
        .collect();
    let definition = match template.render(&values) {
        Ok(definition) => definition,
        Err(error) => {
            return template_page(console, signed, group_id, template, &values, Some(error.to_string())).await;
        }
    };
    match console.kernel.create_webhook(group_id, &definition).await {
        Ok(saved) => Ok(redirect(&format!("/webhooks/{}?done=created", saved.row.id))),
        Err(KernelError::InvalidArgument(message)) => {
            template_page(console, signed, group_id, template, &values, Some(message)).await
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_a_definition_the_kernel_accepts() {
        for template in templates::TEMPLATES {
            let values: Vec<(String, String)> = template
                .fields
                .iter()
                .map(|field| {
                    let value = if field.key.contains("url") || field.key == "topic_endpoint" {
                        "https://example.com/x"
                    } else {
                        "value"
                    };
                    (field.key.to_owned(), value.to_owned())
                })
                .collect();
            let definition = template.render(&values).unwrap();
            let parsed = WebhookDefinition::from_json(&definition);
            assert!(parsed.is_ok(), "{}: {:?}\n{definition}", template.name, parsed.err());
        }
    }
}
