//! Which server the page talks to.
//!
//! By default the page's own origin (the server serves the page and answers JSONP on `/`).
//! `?server=URL` in the page's address overrides it (a server on the page's own host, or any
//! server when the page is opened from a loopback address); under `trunk serve` (a debug build) the
//! default is the chat server's usual port on the same host, since Trunk's dev server does not
//! answer chat requests.

use chat_shared::DEFAULT_PORT;

/// The parts of `window.location` the choice depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLocation {
    /// `location.origin`, e.g. `https://chat.example`; `"null"` for `file:` pages.
    pub origin: String,
    /// `location.hostname`, e.g. `chat.example` or `[::1]`.
    pub hostname: String,
    /// The `server` parameter of the page's query string, if any.
    pub server_param: Option<String>,
}

/// The base URL requests go to (their query string is appended to it).
///
/// `server_param` wins when it is an `http:` or `https:` URL (anything else, `javascript:`
/// included, is ignored); a bare `scheme://host[:port]` gets a trailing `/`, anything with a
/// path or query is used as given. Otherwise a debug
/// build uses `http://<hostname>:8973/` and a release build `<origin>/`; a page without an
/// origin (opened from a file) also falls back to port 8973 on `localhost`.
pub fn resolve_base_url(page: &PageLocation, debug_build: bool) -> String {
    if let Some(server) = page.server_param.as_deref().map(str::trim) {
        if let Some(after_scheme) = strip_http_scheme(server) {
            if after_scheme.is_empty() || !may_use_server(page, after_scheme) {
                // `http://` alone names no server; another host is refused (see below).
            } else if after_scheme.contains(['/', '?']) {
                return server.to_owned();
            } else {
                return format!("{server}/");
            }
        }
    }
    let has_origin = page.origin.starts_with("http://") || page.origin.starts_with("https://");
    if debug_build || !has_origin {
        let host = if page.hostname.is_empty() {
            "localhost"
        } else {
            page.hostname.as_str()
        };
        return format!("http://{host}:{DEFAULT_PORT}/");
    }
    format!("{}/", page.origin)
}

/// Whether the page may talk to the server whose URL continues with `after_scheme`.
///
/// JSONP runs whatever script the server sends with the page's rights, so a link with
/// `?server=https://evil.example/` must not turn the page into that server's puppet: the
/// server must be on the page's own host (any port), unless the page itself is opened from a
/// loopback address (a developer's machine, where pointing it anywhere is the point).
fn may_use_server(page: &PageLocation, after_scheme: &str) -> bool {
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        // An IPv6 literal keeps its brackets, as `location.hostname` writes it.
        bracketed
            .split(']')
            .next()
            .map(|inner| format!("[{inner}]"))
            .unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or("").to_owned()
    };
    let page_host = page.hostname.to_ascii_lowercase();
    let is_loopback =
        page_host == "localhost" || page_host.starts_with("127.") || page_host == "[::1]";
    is_loopback || (!host.is_empty() && host.eq_ignore_ascii_case(&page_host))
}

/// What follows `http://` or `https://` (any case), or `None` for another scheme.
fn strip_http_scheme(url: &str) -> Option<&str> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        let head = url.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &url[scheme.len()..])
    })
}

/// The full URL of a request: `base` followed by `query` (which has no leading `?`).
pub fn request_url(base: &str, query: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

/// Reads the page's location and resolves the server's base URL ([`resolve_base_url`]).
pub fn server_base_url() -> String {
    resolve_base_url(&current_location(), cfg!(debug_assertions))
}

fn current_location() -> PageLocation {
    let location = web_sys::window().map(|window| window.location());
    let read = |get: fn(&web_sys::Location) -> Result<String, wasm_bindgen::JsValue>| {
        location
            .as_ref()
            .and_then(|location| get(location).ok())
            .unwrap_or_default()
    };
    let search = read(web_sys::Location::search);
    let server_param = web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|params| params.get("server"))
        .filter(|server| !server.trim().is_empty());
    PageLocation {
        origin: read(web_sys::Location::origin),
        hostname: read(web_sys::Location::hostname),
        server_param,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(origin: &str, hostname: &str, server_param: Option<&str>) -> PageLocation {
        PageLocation {
            origin: origin.to_owned(),
            hostname: hostname.to_owned(),
            server_param: server_param.map(str::to_owned),
        }
    }

    #[test]
    fn release_builds_talk_to_their_own_origin() {
        let location = page("https://chat.example", "chat.example", None);
        assert_eq!(resolve_base_url(&location, false), "https://chat.example/");
    }

    #[test]
    fn debug_builds_talk_to_the_chat_port_on_the_same_host() {
        let location = page("http://127.0.0.1:8080", "127.0.0.1", None);
        assert_eq!(resolve_base_url(&location, true), "http://127.0.0.1:8973/");
        let ipv6 = page("http://[::1]:8080", "[::1]", None);
        assert_eq!(resolve_base_url(&ipv6, true), "http://[::1]:8973/");
    }

    #[test]
    fn the_server_parameter_overrides_both() {
        for debug in [false, true] {
            for (param, base) in [
                ("http://10.0.0.2:8973", "http://10.0.0.2:8973/"),
                ("https://chat.example/", "https://chat.example/"),
                ("HTTPS://chat.example/room/", "HTTPS://chat.example/room/"),
                ("  http://h:1/  ", "http://h:1/"),
            ] {
                // A page opened from a loopback address may point anywhere.
                let location = page("http://localhost:8080", "localhost", Some(param));
                assert_eq!(
                    resolve_base_url(&location, debug),
                    base,
                    "server={param:?} (debug {debug})"
                );
            }
            // A page elsewhere may point at its own host, on any port.
            let location = page(
                "https://chat.example",
                "chat.example",
                Some("http://CHAT.example:8973"),
            );
            assert_eq!(
                resolve_base_url(&location, debug),
                "http://CHAT.example:8973/"
            );
        }
    }

    #[test]
    fn a_server_parameter_naming_another_host_is_refused() {
        // JSONP runs the server's script with the page's rights: a crafted link must not
        // point a public page at an attacker's server.
        for param in [
            "https://evil.example/",
            "https://chat.example.evil.example/",
            "https://chat.example@evil.example/",
            "http://[::1]:8973/",
            "http://127.0.0.1:8973/",
        ] {
            let location = page("https://chat.example", "chat.example", Some(param));
            assert_eq!(
                resolve_base_url(&location, false),
                "https://chat.example/",
                "server={param:?} must be refused"
            );
        }
    }

    #[test]
    fn a_server_parameter_that_is_not_http_is_ignored() {
        for param in [
            "javascript:alert(1)",
            "data:text/javascript,x",
            "//evil.example/",
            "http://",
            "ftp://x/",
        ] {
            let location = page("https://page.example", "page.example", Some(param));
            assert_eq!(
                resolve_base_url(&location, false),
                "https://page.example/",
                "server={param:?} should be ignored"
            );
        }
    }

    #[test]
    fn a_page_opened_from_a_file_uses_localhost() {
        let location = page("null", "", None);
        assert_eq!(resolve_base_url(&location, false), "http://localhost:8973/");
    }

    #[test]
    fn request_urls_append_the_query() {
        assert_eq!(
            request_url("http://h/", "name=a&time=1"),
            "http://h/?name=a&time=1"
        );
        assert_eq!(
            request_url("http://h/chat?room=1", "name=a"),
            "http://h/chat?room=1&name=a"
        );
    }
}
