//! Rendering an answer as a safe JSONP body: `/**/callback({...});`.
//!
//! The leading `/**/` keeps the first bytes of the body from being attacker-chosen (the
//! Rosetta-Flash class of attacks), the callback name has passed [`CallbackName::parse`], and
//! `<`, `>`, `&`, U+2028 and U+2029 inside the JSON are written as `\u` escapes so the body can
//! neither close a `<script>` element nor break a pre-ES2019 JavaScript string literal.

use actix_web::http::header::{self, HeaderValue};
use actix_web::HttpResponse;
use chat_shared::CallbackName;
use serde::Serialize;

/// The `Content-Type` of every JSONP answer.
pub const JAVASCRIPT_CONTENT_TYPE: &str = "application/javascript; charset=utf-8";

/// The escape for the unsafe character starting at `bytes[idx]`, and its width in bytes: `<`,
/// `>`, `&`, U+2028 and U+2029 (E2 80 A8 and E2 80 A9 in UTF-8). `None` for any other byte.
fn escape_at(bytes: &[u8], idx: usize) -> Option<(&'static str, usize)> {
    match bytes[idx] {
        b'<' => Some(("\\u003c", 1)),
        b'>' => Some(("\\u003e", 1)),
        b'&' => Some(("\\u0026", 1)),
        0xE2 if bytes.get(idx + 1) == Some(&0x80) => match bytes.get(idx + 2) {
            Some(0xA8) => Some(("\\u2028", 3)),
            Some(0xA9) => Some(("\\u2029", 3)),
            _ => None,
        },
        _ => None,
    }
}

/// Writes `json` (already serialized) into `out`, escaping the characters that are unsafe
/// inside a `<script>` element or a JavaScript source file. Those characters can only occur
/// inside JSON strings, where a `\u` escape means the same thing.
pub fn push_escaped_json(out: &mut String, json: &str) {
    let bytes = json.as_bytes();
    let mut copied = 0;
    let mut idx = 0;
    while idx < bytes.len() {
        match escape_at(bytes, idx) {
            Some((replacement, width)) => {
                // `idx` is at a character boundary: every byte matched starts a character.
                out.push_str(&json[copied..idx]);
                out.push_str(replacement);
                idx += width;
                copied = idx;
            }
            None => idx += 1,
        }
    }
    out.push_str(&json[copied..]);
}

/// Whether serialized `json` holds a character [`push_escaped_json`] escapes.
fn needs_escape(json: &[u8]) -> bool {
    (0..json.len()).any(|idx| escape_at(json, idx).is_some())
}

/// The JSONP body `/**/<callback>(<json>);` of `value` serialized as JSON, escaped as
/// [`push_escaped_json`] does. The JSON is written straight into the body, so an answer
/// costs one allocation when `json_bytes` (a guess of the JSON's size) is enough; it is
/// copied again only when it holds a character to escape. A value that cannot be serialized
/// is written as `{}`.
pub fn render_body<T: Serialize + ?Sized>(
    callback: &CallbackName,
    json_bytes: usize,
    value: &T,
) -> String {
    let prefix_len = "/**/".len() + callback.as_str().len() + 1;
    let mut body = Vec::with_capacity(prefix_len + json_bytes + ");".len());
    body.extend_from_slice(b"/**/");
    body.extend_from_slice(callback.as_str().as_bytes());
    body.push(b'(');
    if serde_json::to_writer(&mut body, value).is_err() {
        body.truncate(prefix_len);
        body.extend_from_slice(b"{}");
    }
    if needs_escape(&body[prefix_len..]) {
        // serde_json writes UTF-8 only.
        let json = String::from_utf8_lossy(&body[prefix_len..]).into_owned();
        body.truncate(prefix_len);
        let mut escaped = String::with_capacity(json.len() + 32);
        push_escaped_json(&mut escaped, &json);
        body.extend_from_slice(escaped.as_bytes());
    }
    body.extend_from_slice(b");");
    String::from_utf8(body)
        .unwrap_or_else(|not_utf8| String::from_utf8_lossy(not_utf8.as_bytes()).into_owned())
}

/// A 200 answer carrying `body` with the JSONP headers: JavaScript content type, `nosniff`,
/// `no-store` (every poll is fresh) and `X-Accel-Buffering: no` (a buffering proxy such as
/// nginx must not hold a long-poll answer back).
pub fn response(body: String) -> HttpResponse {
    let mut response = HttpResponse::Ok().body(body);
    insert_headers(&mut response);
    response
}

fn insert_headers(response: &mut HttpResponse) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JAVASCRIPT_CONTENT_TYPE),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_other_characters_alone_including_neighbours_of_the_line_separators() {
        let mut out = String::new();
        push_escaped_json(
            &mut out,
            "\"\u{2026}\u{2027}\u{202A}中文 a<b \u{2028}x\u{2029}\"",
        );
        assert_eq!(
            out,
            "\"\u{2026}\u{2027}\u{202A}中文 a\\u003cb \\u2028x\\u2029\""
        );
    }

    #[test]
    fn escapes_script_breaking_characters_inside_strings() {
        let callback = CallbackName::parse("cb").expect("valid");
        let value = serde_json::json!({"msg": "</script><b>&\u{2028}\u{2029}"});
        for json_bytes in [0, 16, 1024] {
            assert_eq!(
                render_body(&callback, json_bytes, &value),
                r#"/**/cb({"msg":"\u003c/script\u003e\u003cb\u003e\u0026\u2028\u2029"});"#
            );
        }
        let plain = serde_json::json!({"msg": "\u{2027}\u{202A}中文 a"});
        assert_eq!(
            render_body(&callback, 8, &plain),
            "/**/cb({\"msg\":\"\u{2027}\u{202A}中文 a\"});"
        );
    }
}
