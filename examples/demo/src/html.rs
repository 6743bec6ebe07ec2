//! The pages, as `format!` templates. Everything a visitor controls (their user name, their
//! browser's user agent) goes through [`escape`] before it reaches a page.

use std::fmt::Write as _;

use axum::response::Html;
use sessionware::Device;
use time::OffsetDateTime;

const STYLE: &str = "
body { font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
header { display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #ddd; padding-bottom: .5rem; }
header .who { margin-left: auto; color: #555; }
form.inline { display: inline; }
button { font: inherit; padding: .3rem .8rem; border: 1px solid #888; border-radius: 4px; background: #f4f4f4; cursor: pointer; }
button.danger { border-color: #b33; color: #b33; }
.flash { background: #e8f4e8; border: 1px solid #9c9; padding: .4rem .8rem; border-radius: 4px; list-style: none; margin: .5rem 0; }
ul.flashes, ul.devices { padding: 0; }
li.device { list-style: none; border: 1px solid #ddd; border-radius: 6px; padding: .6rem .8rem; margin: .6rem 0; }
li.device .name { font-weight: bold; }
li.device .agent { font-family: monospace; font-size: .8rem; color: #555; word-break: break-all; }
.this-device { background: #246; color: #fff; border-radius: 4px; padding: 0 .4rem; font-size: .85rem; }
#count { font-size: 2.5rem; font-weight: bold; margin-right: 1rem; }
label { display: block; margin: .5rem 0; }
";

/// Escapes text for an HTML element body or a double-quoted attribute value.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

/// A form with one button that posts the CSRF token (and `fields`) to `action`.
fn button(action: &str, label: &str, csrf: &str, fields: &[(&str, &str)], class: &str) -> String {
    let mut hidden = String::new();
    for (name, value) in fields {
        let _ = write!(
            hidden,
            r#"<input type="hidden" name="{name}" value="{}">"#,
            escape(value)
        );
    }
    format!(
        r#"<form class="inline" method="post" action="{action}"><input type="hidden" name="csrf" value="{csrf}">{hidden}<button class="{class}" type="submit">{label}</button></form>"#,
        csrf = escape(csrf),
    )
}

/// The frame around every page: navigation, who is signed in, the flash messages.
pub(crate) fn page(user: Option<&str>, csrf: &str, flashes: &[String], body: &str) -> Html<String> {
    let nav = match user {
        Some(user) => format!(
            r#"<a href="/">Counter</a> <a href="/devices">Your devices</a> <a href="/settings">Settings</a>
<span class="who">Signed in as <strong id="user">{}</strong></span> {}"#,
            escape(user),
            button("/logout", "Sign out", csrf, &[], "")
        ),
        None => r#"<a href="/">Sign in</a>"#.to_owned(),
    };
    let mut messages = String::new();
    for message in flashes {
        let _ = write!(messages, r#"<li class="flash">{}</li>"#, escape(message));
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sessionware demo</title><style>{STYLE}</style></head>
<body>
<header><strong>sessionware demo</strong> {nav}</header>
<ul class="flashes">{messages}</ul>
<main>{body}</main>
</body>
</html>"#
    ))
}

pub(crate) fn sign_in(csrf: &str, password: &str) -> String {
    format!(
        r#"<h1>Sign in</h1>
<p>Any user name works; the password is <strong id="demo-password">{password}</strong>.
Sign in from two browsers with the same name to see two devices.</p>
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<label>User name <input name="user" autocomplete="username" required maxlength="40"></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<label><input type="checkbox" name="remember" value="on"> Remember me for 30 days</label>
<button type="submit">Sign in</button>
</form>"#,
        password = escape(password),
        csrf = escape(csrf),
    )
}

pub(crate) fn counter(count: u64, csrf: &str) -> String {
    format!(
        r#"<h1>Counter</h1>
<p>Kept in this browser's session, on the server.</p>
<p><span id="count">{count}</span> {}</p>"#,
        button("/count", "Count", csrf, &[], "")
    )
}

/// The sensitive page, open while the sign-in is recent.
pub(crate) fn settings(signed_in_ago: i64, window: i64) -> String {
    format!(
        r#"<h1>Sensitive settings</h1>
<p id="sudo">You signed in (or confirmed it) {signed_in_ago} s ago, so this page is open for
{window} s after that. Past that, it asks for your password again.</p>"#
    )
}

/// Asks for the password again before the sensitive page.
pub(crate) fn confirm(csrf: &str, window: i64) -> String {
    format!(
        r#"<h1>Confirm it's you</h1>
<p>Your sign-in is older than {window} s. Enter your password again to open the settings.</p>
<form method="post" action="/confirm">
<input type="hidden" name="csrf" value="{csrf}">
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Confirm</button>
</form>"#,
        csrf = escape(csrf),
    )
}

pub(crate) fn devices(devices: &[Device], csrf: &str, now: OffsetDateTime) -> String {
    let mut items = String::new();
    for device in devices {
        let mark = if device.current {
            r#" <span class="this-device">this device</span>"#.to_owned()
        } else {
            String::new()
        };
        let agent = device.user_agent.as_deref().unwrap_or("");
        let _ = write!(
            items,
            r#"<li class="device">
<div class="name">{name}</div>
<div class="agent">{agent}</div>
<div>from {address} · created {created} · last seen {seen}{mark}</div>
<div>{revoke}</div>
</li>"#,
            name = device_name(agent),
            agent = escape(agent),
            address = escape(device.address.as_deref().unwrap_or("an unknown address")),
            created = ago(device.created_at, now),
            seen = ago(device.last_seen, now),
            revoke = button(
                "/devices/revoke",
                "Revoke",
                csrf,
                &[("device", device.id.as_str())],
                "danger"
            ),
        );
    }
    format!(
        r#"<h1>Your devices</h1>
<p>Every browser signed in as you: this one first, then the others by latest use. Revoke one to sign it out on its next page load.</p>
<ul class="devices">{items}</ul>
<p>{}</p>"#,
        button(
            "/logout-everywhere",
            "Log out everywhere",
            csrf,
            &[],
            "danger"
        )
    )
}

/// "Chrome on Linux", guessed from a `User-Agent` for people to recognise their devices by; the
/// full text is shown below it. Order matters: most agents also name the browsers they extend.
fn device_name(agent: &str) -> String {
    let has = |word: &str| agent.contains(word);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("HeadlessChrome/") {
        "Headless Chrome"
    } else if has("Chrome/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "A browser"
    };
    let system = if has("Android") {
        "Android"
    } else if has("iPhone") || has("iPad") {
        "iOS"
    } else if has("Windows") {
        "Windows"
    } else if has("Mac OS X") {
        "macOS"
    } else if has("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {system}")
}

/// "just now", "5 min ago", "3 h ago", "2 days ago".
fn ago(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let seconds = (now - then).whole_seconds().max(0);
    match seconds {
        0..60 => "just now".to_owned(),
        60..3_600 => format!("{} min ago", seconds / 60),
        3_600..86_400 => format!("{} h ago", seconds / 3_600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_gives_meaning_to() {
        assert_eq!(
            escape(r#"<b a="1" b='2'>&amp;</b> ok"#),
            "&lt;b a=&quot;1&quot; b=&#39;2&#39;&gt;&amp;amp;&lt;/b&gt; ok"
        );
    }

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let name = |agent: &str| device_name(agent);
        assert_eq!(
            name(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
            ),
            "Headless Chrome on Linux"
        );
        assert_eq!(
            name(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iOS"
        );
        assert_eq!(
            name(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"
            ),
            "Edge on Windows"
        );
        assert_eq!(
            name(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:120.0) Gecko/20100101 Firefox/120.0"
            ),
            "Firefox on macOS"
        );
        assert_eq!(name("curl/8.0"), "A browser");
        assert_eq!(name(""), "A browser");
    }

    #[test]
    fn ages_read_as_a_person_would_say_them() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        let before = |s: i64| now - time::Duration::seconds(s);
        assert_eq!(ago(before(5), now), "just now");
        assert_eq!(ago(before(-5), now), "just now");
        assert_eq!(ago(before(150), now), "2 min ago");
        assert_eq!(ago(before(7_300), now), "2 h ago");
        assert_eq!(ago(before(3 * 86_400), now), "3 days ago");
    }
}
