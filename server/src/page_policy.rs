//! The Content-Security-Policy of the web page (`index.html`): scripts only from the page's own
//! origin (which is the chat server that serves it, so its JSONP `<script>`s pass), the
//! page's one inline loader script by its SHA-256 (trunk writes it into `index.html`), and
//! `'wasm-unsafe-eval'` so the WebAssembly module may be compiled. Nothing else runs: a message
//! that smuggled markup into the page could not load or run a script.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The policy for an `index.html` whose text is `html`.
pub fn content_security_policy(html: &str) -> String {
    let inline_hashes: String = inline_scripts(html)
        .map(|script| {
            let digest = Sha256::digest(script.as_bytes());
            format!(
                " 'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        })
        .collect();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{inline_hashes}; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

/// The text of each `<script>` element without `src` in `html`, exactly as written (what
/// browsers hash).
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = rest.find("<script")?;
        let after_tag = &rest[start..];
        let open_end = after_tag.find('>')?;
        let tag = &after_tag[..open_end];
        let body_and_rest = &after_tag[open_end + 1..];
        let close = body_and_rest.find("</script>")?;
        let body = &body_and_rest[..close];
        rest = &body_and_rest[close + "</script>".len()..];
        if !tag.contains(" src=") {
            return Some(body);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_loader_is_allowed_by_its_hash_and_scripts_with_src_are_not_hashed() {
        let html = "<head><script type=\"module\">\nimport init from '/a.js';\n</script>\
                    <script src=\"/b.js\"></script></head>";
        let scripts: Vec<&str> = inline_scripts(html).collect();
        assert_eq!(scripts, ["\nimport init from '/a.js';\n"]);
        let policy = content_security_policy(html);
        let expected = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest("\nimport init from '/a.js';\n".as_bytes()));
        assert!(policy.contains(&format!("'sha256-{expected}'")), "{policy}");
        assert!(
            policy.contains("script-src 'self' 'wasm-unsafe-eval'"),
            "{policy}"
        );
        assert!(!policy.contains("unsafe-inline"), "{policy}");
    }
}
