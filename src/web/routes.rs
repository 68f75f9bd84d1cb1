//! URL → [`Route`], a pure function with one table test (moonfire's `path.rs`).

/// Every URL the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Root,                     // /
    ApiStatus,                // /api/status
    ApiStreams,               // /api/streams
    ApiStreamHistory(String), // /api/streams/{name}/history
    Healthz,                  // /healthz
    NotFound,
}

impl Route {
    /// Decodes a request path (without the query string). Stream names are
    /// percent-decoded; names may contain spaces and any Unicode.
    pub fn decode(path: &str) -> Route {
        match path {
            "/" => return Route::Root,
            "/api/status" | "/api/status/" => return Route::ApiStatus,
            "/api/streams" | "/api/streams/" => return Route::ApiStreams,
            "/healthz" => return Route::Healthz,
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/api/streams/") {
            if let Some(enc) = rest.strip_suffix("/history") {
                if !enc.is_empty() && !enc.contains('/') {
                    if let Ok(name) = percent_encoding::percent_decode_str(enc).decode_utf8() {
                        return Route::ApiStreamHistory(name.into_owned());
                    }
                }
            }
        }
        Route::NotFound
    }
}

/// Splits `url` (as tiny_http gives it) into path and query.
pub fn split_query(url: &str) -> (&str, &str) {
    url.split_once('?').unwrap_or((url, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let cases = [
            ("/", Route::Root),
            ("/api/status", Route::ApiStatus),
            ("/api/status/", Route::ApiStatus),
            ("/api/streams", Route::ApiStreams),
            ("/healthz", Route::Healthz),
            (
                "/api/streams/cam1/history",
                Route::ApiStreamHistory("cam1".into()),
            ),
            (
                "/api/streams/Front%20door/history",
                Route::ApiStreamHistory("Front door".into()),
            ),
            (
                "/api/streams/a%2Fb/history",
                Route::ApiStreamHistory("a/b".into()),
            ),
            ("/api/streams//history", Route::NotFound),
            ("/api/streams/a/b/history", Route::NotFound),
            ("/api/streams/%ff/history", Route::NotFound),
            ("/api/statusx", Route::NotFound),
            ("/../etc/passwd", Route::NotFound),
        ];
        for (path, want) in cases {
            assert_eq!(Route::decode(path), want, "{path}");
        }
        assert_eq!(split_query("/a?b=1"), ("/a", "b=1"));
        assert_eq!(split_query("/a"), ("/a", ""));
    }
}
