//! Who signed in from where: the client details kept with a session, and the human label shown on
//! the "your sessions" page.

use serde::{Deserialize, Serialize};

/// Longest User-Agent kept with a session, in bytes. Real browsers send 100-250 bytes; the cap
/// keeps a hostile client from inflating every record (and the admin page) with a huge header.
pub const MAX_USER_AGENT_LEN: usize = 512;

/// Longest client address kept with a session, in bytes (an IPv6 address with a zone fits well).
/// The address may come from a forwarding header, which the client controls.
pub const MAX_IP_LEN: usize = 64;

/// What the server knows about the client that signs in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Client address (after trusted-proxy resolution by the caller).
    pub ip: Option<String>,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The address as stored: capped at [`MAX_IP_LEN`] bytes, `None` when empty.
    pub fn stored_ip(&self) -> Option<String> {
        self.ip
            .as_deref()
            .map(|ip| truncate_at_char_boundary(ip.trim(), MAX_IP_LEN))
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned)
    }

    /// The User-Agent as stored: capped at [`MAX_USER_AGENT_LEN`] bytes, `None` when empty.
    pub fn stored_user_agent(&self) -> Option<String> {
        self.user_agent
            .as_deref()
            .map(cap_user_agent)
            .filter(|ua| !ua.is_empty())
            .map(str::to_owned)
    }
}

/// Cuts a User-Agent to at most [`MAX_USER_AGENT_LEN`] bytes without splitting a character.
pub fn cap_user_agent(user_agent: &str) -> &str {
    truncate_at_char_boundary(user_agent.trim(), MAX_USER_AGENT_LEN)
}

fn truncate_at_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    // A UTF-8 character is at most 4 bytes, so this loop runs at most 3 times.
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A short human label for a User-Agent: "Firefox on Linux", "Safari on iPhone", "curl";
/// "Unknown device" when nothing is recognised.
pub fn device_label(user_agent: Option<&str>) -> String {
    const UNKNOWN: &str = "Unknown device";
    let Some(agent) = user_agent.map(cap_user_agent).filter(|ua| !ua.is_empty()) else {
        return UNKNOWN.to_owned();
    };
    let Some(parsed) = woothee::parser::Parser::new().parse(agent) else {
        return UNKNOWN.to_owned();
    };
    let known = |value: &str| !value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN;

    if parsed.category == "misc" && parsed.name == "HTTP Library" && known(parsed.version) {
        // woothee reports HTTP clients as one family and puts the tool ("curl", "wget") in version.
        return parsed.version.to_owned();
    }
    let browser = known(parsed.name).then_some(parsed.name);
    let os = known(parsed.os).then(|| os_label(parsed.os));
    match (browser, os) {
        (Some(browser), Some(os)) if parsed.category != "crawler" => format!("{browser} on {os}"),
        (Some(browser), _) => browser.to_owned(),
        (None, Some(os)) => os.to_owned(),
        (None, None) => UNKNOWN.to_owned(),
    }
}

/// Drops version detail people do not care about on a sessions page ("Windows 10" -> "Windows").
fn os_label(os: &str) -> &str {
    if os.starts_with("Windows Phone") {
        "Windows Phone"
    } else if os.starts_with("Windows") {
        "Windows"
    } else if os == "Mac OSX" {
        "macOS"
    } else {
        os
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const FIREFOX_UBUNTU: &str =
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36";
    const EDGE_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87";
    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) \
        AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
    const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

    #[test]
    fn labels_real_browsers() {
        let cases = [
            (FIREFOX_LINUX, "Firefox on Linux"),
            (FIREFOX_UBUNTU, "Firefox on Linux"),
            (SAFARI_IPHONE, "Safari on iPhone"),
            (SAFARI_IPAD, "Safari on iPad"),
            (CHROME_ANDROID, "Chrome on Android"),
            (EDGE_WINDOWS, "Edge on Windows"),
            (CHROME_WINDOWS, "Chrome on Windows"),
            (CHROME_MAC, "Chrome on macOS"),
            (SAFARI_MAC, "Safari on macOS"),
            ("curl/8.5.0", "curl"),
            ("Wget/1.21.4", "wget"),
        ];
        for (ua, expected) in cases {
            assert_eq!(device_label(Some(ua)), expected, "{ua}");
        }
    }

    #[test]
    fn unknown_agents() {
        for ua in [
            None,
            Some(""),
            Some("   "),
            Some("-"),
            Some("zz"),
            Some("\u{0}\u{1}"),
        ] {
            assert_eq!(device_label(ua), "Unknown device", "{ua:?}");
        }
    }

    #[test]
    fn caps_user_agent_on_char_boundary() {
        let long = "é".repeat(400); // 800 bytes, 2 bytes per char
        let capped = cap_user_agent(&long);
        assert!(capped.len() <= MAX_USER_AGENT_LEN);
        assert_eq!(capped.len(), MAX_USER_AGENT_LEN);
        let odd = format!("a{}", "é".repeat(400)); // boundary falls inside a char at 512
        let capped = cap_user_agent(&odd);
        assert_eq!(capped.len(), MAX_USER_AGENT_LEN - 1);
        assert!(odd.starts_with(capped));
        assert_eq!(cap_user_agent(FIREFOX_LINUX), FIREFOX_LINUX);

        let info = ClientInfo {
            ip: Some(" 2001:db8::1 ".into()),
            user_agent: Some(format!("{FIREFOX_LINUX}{}", "x".repeat(1000))),
        };
        assert_eq!(info.stored_ip().as_deref(), Some("2001:db8::1"));
        assert_eq!(info.stored_user_agent().unwrap().len(), MAX_USER_AGENT_LEN);
        // Parsing the capped header still recognises the browser.
        assert_eq!(
            device_label(info.stored_user_agent().as_deref()),
            "Firefox on Linux"
        );
        let empty = ClientInfo {
            ip: Some(String::new()),
            user_agent: Some("  ".into()),
        };
        assert_eq!(empty.stored_ip(), None);
        assert_eq!(empty.stored_user_agent(), None);
    }

    #[test]
    fn huge_hostile_agent_does_not_panic() {
        let ua = format!("Mozilla/5.0 ({}", "(".repeat(100_000));
        let _ = device_label(Some(&ua));
    }
}
