//! The opening handshake: `validate_request` on a `HeaderMap` built from
//! arbitrary bytes, and `parse_extensions` on raw bytes.
//!
//! Input layout: `[flags, version, lines ..]`, lines separated by `\n`.
//! - `flags` bits 0-4: start from a valid request's host, upgrade, connection,
//!   key and version headers (one bit each), so the fuzzer reaches the
//!   accepting paths; bits 5-6: the method (GET, POST, HEAD, CONNECT).
//! - `version % 5`: HTTP/1.1, 0.9, 1.0, 2, 3.
//! - a line whose first byte is below 0x10 names a handshake header (low 3
//!   bits pick it; 0x08 set: `insert`, replacing, else `append`) and the rest is
//!   the value; any other line is `name:value`, appended. Lines with an invalid
//!   name or value are skipped.
//!
//! Invariants: never panics; `Ok` implies every §4.2.1 rule held (GET, HTTP/1.1+,
//! Host, Upgrade/Connection tokens, one version "13", one key of 16 base64
//! bytes), `accept` is 28 characters of base64 (20 bytes) equal to
//! `accept_key(key)`, protocols are non-empty tokens and extensions are what
//! `parse_extensions` gives; `Err` has a 400 or 426 status. `parse_extensions`
//! on the raw input, when `Some`, gives lower-case tokens, and serialising the
//! offers back and parsing again gives the same offers.
#![no_main]

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};
use lariat_proto::handshake::{accept_key, parse_extensions, validate_request, ExtensionOffer};
use libfuzzer_sys::fuzz_target;

const KNOWN: [&str; 8] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
];

const BASE: [(&str, &str); 5] = [
    ("host", "example.com"),
    ("upgrade", "websocket"),
    ("connection", "Upgrade"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("sec-websocket-version", "13"),
];

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|i| i.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

fn serialise(offers: &[ExtensionOffer]) -> String {
    let mut out = String::new();
    for (i, o) in offers.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&o.name);
        for (k, v) in &o.params {
            out.push_str("; ");
            out.push_str(k);
            if let Some(v) = v {
                // Alternate the two spellings a value may take.
                if v.len() % 2 == 0 {
                    out.push_str(&format!("=\"{v}\""));
                } else {
                    out.push('=');
                    out.push_str(v);
                }
            }
        }
    }
    out
}

fn check_offers(offers: &[ExtensionOffer]) {
    for o in offers {
        assert!(is_token(&o.name), "extension name {:?}", o.name);
        assert_eq!(o.name, o.name.to_ascii_lowercase());
        for (k, v) in &o.params {
            assert!(is_token(k), "parameter name {k:?}");
            assert_eq!(*k, k.to_ascii_lowercase());
            if let Some(v) = v {
                assert!(is_token(v), "parameter value {v:?}");
            }
        }
    }
    let text = serialise(offers);
    let again = parse_extensions(text.as_bytes());
    assert_eq!(again.as_deref(), Some(offers), "round trip of {text:?}");
}

fuzz_target!(|data: &[u8]| {
    // parse_extensions on the raw bytes.
    if let Some(offers) = parse_extensions(data) {
        check_offers(&offers);
    }

    let [flags, version, lines @ ..] = data else {
        return;
    };
    let method = match (flags >> 5) & 3 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::HEAD,
        _ => Method::CONNECT,
    };
    let version = match version % 5 {
        0 => Version::HTTP_11,
        1 => Version::HTTP_09,
        2 => Version::HTTP_10,
        3 => Version::HTTP_2,
        _ => Version::HTTP_3,
    };
    let mut headers = HeaderMap::new();
    for (i, (name, value)) in BASE.iter().enumerate() {
        if flags & (1 << i) != 0 {
            headers.append(*name, HeaderValue::from_static(value));
        }
    }
    for line in lines.split(|&b| b == b'\n') {
        let Some((&first, rest)) = line.split_first() else {
            continue;
        };
        if first < 0x10 {
            let name = HeaderName::from_static(KNOWN[(first & 7) as usize]);
            let Ok(value) = HeaderValue::from_bytes(rest) else {
                continue;
            };
            if first & 8 != 0 {
                headers.insert(name, value);
            } else {
                headers.append(name, value);
            }
        } else {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(&line[colon + 1..]),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
    }

    match validate_request(&method, version, &headers) {
        Ok(ok) => {
            assert_eq!(method, Method::GET);
            assert!(version >= Version::HTTP_11);
            assert!(headers.contains_key("host"));
            assert!(has_token(&headers, "upgrade", "websocket"));
            assert!(has_token(&headers, "connection", "upgrade"));
            let versions: Vec<_> = headers.get_all("sec-websocket-version").iter().collect();
            assert_eq!(versions.len(), 1);
            assert_eq!(versions[0].as_bytes().trim_ascii(), b"13");
            let keys: Vec<_> = headers.get_all("sec-websocket-key").iter().collect();
            assert_eq!(keys.len(), 1);
            let key = keys[0].as_bytes().trim_ascii();
            assert_eq!(
                key.len(),
                24,
                "a 16-byte key is 24 base64 characters: {key:?}"
            );

            assert_eq!(ok.accept.len(), 28, "accept {:?}", ok.accept);
            assert!(ok.accept.ends_with('='));
            assert!(ok.accept[..27]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
            assert_eq!(ok.accept, accept_key(key));

            for p in &ok.protocols {
                assert!(is_token(p), "protocol {p:?}");
            }
            let mut expected = Vec::new();
            for v in headers.get_all("sec-websocket-extensions") {
                match parse_extensions(v.as_bytes()) {
                    Some(mut o) => expected.append(&mut o),
                    None => {
                        expected.clear();
                        break;
                    }
                }
            }
            assert_eq!(ok.extensions, expected);
            check_offers(&ok.extensions);
        }
        Err(e) => {
            let status = e.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::UPGRADE_REQUIRED,
                "{e:?} -> {status}"
            );
            assert!(!e.message().is_empty());
            let _ = e.to_string();
            let _ = e.headers();
            if method != Method::GET {
                assert_eq!(e, lariat_proto::handshake::HandshakeError::MethodNotGet);
            }
        }
    }
});
