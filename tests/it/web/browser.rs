//! [`Browser`]: a tiny cookie-keeping client that never follows redirects,
//! so each test sees exactly the status, `Location` and `Set-Cookie` a
//! browser would; [`Page`] is one answer.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::app::App;
use crate::util::between;

/// One answer.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Page {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(crate) fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub(crate) fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }
    /// The value of the hidden input `name` (the first one).
    pub(crate) fn hidden(&self, name: &str) -> String {
        let t = self.text();
        between(&t, &format!("name=\"{name}\" value=\""), "\"")
            .unwrap_or_else(|| panic!("no hidden {name} in:\n{t}"))
            .to_owned()
    }
    /// The text of the element with `id` (up to the next `<`).
    pub(crate) fn by_id(&self, id: &str) -> Option<String> {
        let t = self.text();
        let key = format!("id=\"{id}\"");
        let i = t.find(&key)?;
        let rest = &t[i..];
        let start = rest.find('>')? + 1;
        Some(rest[start..].split('<').next()?.to_owned())
    }
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A cookie-keeping client that does not follow redirects.
pub(crate) struct Browser {
    pub(crate) base: String,
    agent: ureq::Agent,
    pub(crate) jar: BTreeMap<String, String>,
    /// Extra headers sent with every request.
    pub(crate) extra: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new(app: &App) -> Browser {
        Browser {
            base: format!("http://{}", app.addr),
            agent: ureq::Agent::new_with_config(
                ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(Duration::from_secs(30)))
                    .build(),
            ),
            jar: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &ureq::http::Response<ureq::Body>) -> Vec<(String, String)> {
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (k, v) in &headers {
            if k == "set-cookie" {
                let first = v.split(';').next().unwrap_or("");
                if let Some((name, value)) = first.split_once('=') {
                    if v.contains("Max-Age=0") || value.is_empty() {
                        self.jar.remove(name);
                    } else {
                        self.jar.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        headers
    }

    fn finish(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Page {
        let headers = self.keep(&resp);
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Page {
        let mut rq = self.agent.get(&format!("{}{path}", self.base));
        if !self.jar.is_empty() {
            rq = rq.header("Cookie", &self.cookie_header());
        }
        for (k, v) in &self.extra {
            rq = rq.header(k, v);
        }
        let resp = rq.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.finish(resp)
    }

    /// POSTs a form as a browser on this site would (same Origin).
    pub(crate) fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post_raw(path, "application/x-www-form-urlencoded", &body, true)
    }

    pub(crate) fn post_raw(
        &mut self,
        path: &str,
        ctype: &str,
        body: &str,
        same_origin: bool,
    ) -> Page {
        let mut rq = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Content-Type", ctype);
        if same_origin {
            rq = rq.header("Origin", &self.base);
        }
        if !self.jar.is_empty() {
            rq = rq.header("Cookie", &self.cookie_header());
        }
        for (k, v) in &self.extra {
            rq = rq.header(k, v);
        }
        let resp = rq.send(body).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.finish(resp)
    }

    /// The CSRF token of the page at `path`.
    pub(crate) fn csrf(&mut self, path: &str) -> String {
        let p = self.get(path);
        assert_eq!(p.status, 200, "GET {path}: {}", p.text());
        p.hidden("csrf")
    }

    /// Makes an API token called `name` on the Access page with the
    /// session's CSRF token `csrf` and `scope` (none: the form's default);
    /// the answer shows the token once.
    pub(crate) fn create_token(&mut self, csrf: &str, name: &str, scope: Option<&str>) -> Page {
        let mut fields = vec![
            ("csrf", csrf),
            ("action", "create_token"),
            ("token_name", name),
        ];
        fields.extend(scope.map(|s| ("scope", s)));
        self.post("/settings/access", &fields)
    }
}
