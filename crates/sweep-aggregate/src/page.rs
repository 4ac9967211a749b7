//! A self-contained HTML page of this crate's (`report.html`, `compare.html`): rendered from
//! its minijinja template with HTML auto-escaping, charts inlined as SVG.

use serde::Serialize;

/// Text as HTML (and XML: `sweep compare --junit`) shows it.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a page of this crate's. The template is its own and every value a plain one, so it
/// cannot fail but by a bug; that is said in the page rather than losing the tables already
/// written.
pub(crate) fn render(name: &str, template: &str, page: &impl Serialize) -> String {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
    // Text is escaped as HTML needs (`& < > " '`); `/` is left alone so paths read as written.
    env.set_formatter(|out, _state, value| {
        let text = value.to_string();
        let written = if value.is_safe() { out.write_str(&text) } else { out.write_str(&escape(&text)) };
        written.map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "writing the page"))
    });
    let rendered = env
        .template_from_named_str(name, template)
        .and_then(|template| template.render(minijinja::Value::from_serialize(page)));
    rendered.unwrap_or_else(|e| {
        format!("<!DOCTYPE html><p>sweep: the page could not be rendered: {}</p>", escape(&format!("{e:#}")))
    })
}

/// An SVG document's `<svg>` element, without the XML header, to inline in a page.
pub(crate) fn strip_xml_header(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}
