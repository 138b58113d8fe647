//! Hand-written HTML: one escaping helper and the page frame. No external assets: the style
//! sheet and the script are served by the gateway itself (a strict CSP forbids inline ones).

use std::fmt::Write as _;

/// `text` escaped for HTML element content and double-quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    /// The login page (no navigation).
    None,
    /// Pending approvals.
    Approvals,
    /// Ticket claims.
    Claims,
    /// Audit review.
    Audit,
}

/// The logged-in user of a page and the CSRF token its forms carry.
pub(crate) struct Viewer<'a> {
    /// The vCenter user name.
    pub(crate) user: &'a str,
    /// The session's CSRF token.
    pub(crate) csrf: &'a str,
}

/// A notice shown at the top of a page.
pub(crate) enum Notice {
    /// Something worked.
    Ok(String),
    /// Something was refused.
    Error(String),
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, esc(csrf))
}

/// A whole page: frame, navigation, notice and `body` (already HTML).
pub(crate) fn page(
    title: &str,
    nav: Nav,
    viewer: Option<&Viewer<'_>>,
    notice: Option<&Notice>,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<title>{} · vcguard</title>",
            "<link rel=\"stylesheet\" href=\"/vcguard/ui/static/app.css\">",
            "<script src=\"/vcguard/ui/static/app.js\" defer></script>",
            "</head><body><header><span class=\"brand\">vcguard</span>"
        ),
        esc(title)
    );
    if let Some(viewer) = viewer {
        out.push_str("<nav>");
        for (entry, href, label) in [
            (Nav::Approvals, "/vcguard/ui/approvals", "Approvals"),
            (Nav::Claims, "/vcguard/ui/claims", "Ticket claims"),
            (Nav::Audit, "/vcguard/ui/audit", "Audit log"),
        ] {
            let current = if entry == nav {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
        }
        let _ = write!(
            out,
            concat!(
                "</nav><form class=\"logout\" method=\"post\" action=\"/vcguard/ui/logout\">{}",
                "<span class=\"user\" id=\"user\">{}</span> <button type=\"submit\">Log out</button></form>"
            ),
            csrf_field(viewer.csrf),
            esc(viewer.user)
        );
    }
    out.push_str("</header><main>");
    let _ = write!(out, "<h1>{}</h1>", esc(title));
    match notice {
        Some(Notice::Ok(text)) => {
            let _ = write!(
                out,
                "<p class=\"notice ok\" role=\"status\" id=\"notice\">{}</p>",
                esc(text)
            );
        }
        Some(Notice::Error(text)) => {
            let _ = write!(
                out,
                "<p class=\"notice error\" role=\"alert\" id=\"notice\">{}</p>",
                esc(text)
            );
        }
        None => {}
    }
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("a\u{0}b"), "a\u{fffd}b");
    }

    #[test]
    fn the_page_escapes_the_user_and_the_title() {
        let viewer = Viewer {
            user: "<b>eve</b>",
            csrf: "t\"k",
        };
        let html = page("A & B", Nav::Approvals, Some(&viewer), None, "");
        assert!(html.contains("&lt;b&gt;eve&lt;/b&gt;"));
        assert!(html.contains("A &amp; B"));
        assert!(html.contains("value=\"t&quot;k\""));
        assert!(!html.contains("<b>eve"));
    }
}
