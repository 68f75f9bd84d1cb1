//! Forms: the inputs a form shows ([`Field`], drawn by `fields.html`), and
//! the one flow every page that edits config.yaml follows ([`FormPage`],
//! driven by [`run`]): a GET shows the form; a POST checks what was typed,
//! edits the file through [`ConfigFile::edit`](crate::config::edit::ConfigFile::edit),
//! waits until the daemon runs it and redirects, or shows the form again
//! with each error next to its field (400). Written once so the setup,
//! editor and settings pages cannot drift apart in status codes or in
//! what they echo.

use std::time::{Duration, Instant};

use crate::config::edit::{EditError, FieldErrors, Yaml};
use crate::web::handler::{Form, Req, Resp};
use crate::web::{HttpError, WebCtx};

/// Longest wait for the daemon to apply a config the GUI wrote.
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// One input of a form (see `fields.html`).
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `password`, `number`, `select`, `checkbox` or `section` (a heading).
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Opt>,
    pub error: Option<String>,
    pub hint: String,
    pub placeholder: String,
    pub required: bool,
    pub autocomplete: &'static str,
    /// id of a `<datalist>` with suggestions.
    pub list: &'static str,
}

/// One `<option>`.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Field {
    fn new(name: &'static str, label: &'static str, kind: &'static str) -> Field {
        Field {
            name,
            label,
            kind,
            value: String::new(),
            checked: false,
            options: Vec::new(),
            error: None,
            hint: String::new(),
            placeholder: String::new(),
            required: false,
            autocomplete: "",
            list: "",
        }
    }
    pub(super) fn text(name: &'static str, label: &'static str, value: &str) -> Field {
        Field {
            value: value.to_owned(),
            ..Field::new(name, label, "text")
        }
    }
    pub(super) fn number(name: &'static str, label: &'static str, value: &str) -> Field {
        Field {
            value: value.to_owned(),
            ..Field::new(name, label, "number")
        }
    }
    pub(super) fn password(
        name: &'static str,
        label: &'static str,
        autocomplete: &'static str,
    ) -> Field {
        Field {
            autocomplete,
            ..Field::new(name, label, "password")
        }
    }
    pub(super) fn checkbox(name: &'static str, label: &'static str, checked: bool) -> Field {
        Field {
            checked,
            ..Field::new(name, label, "checkbox")
        }
    }
    pub(super) fn select(
        name: &'static str,
        label: &'static str,
        value: &str,
        opts: &[(&str, &str)],
    ) -> Field {
        Field {
            options: opts
                .iter()
                .map(|(v, l)| Opt {
                    value: (*v).to_owned(),
                    label: (*l).to_owned(),
                    selected: *v == value,
                })
                .collect(),
            ..Field::new(name, label, "select")
        }
    }
    pub(super) fn section(label: &'static str, hint: &str) -> Field {
        Field {
            hint: hint.to_owned(),
            ..Field::new("", label, "section")
        }
    }
    /// A write-only password input named `password` (blank keeps the one
    /// stored) and, when one is stored, the `clear_password` checkbox that
    /// removes it. `forgotten_on` names the changes that drop it; `owner`
    /// is who asks for it (`camera`, `broker`).
    pub(super) fn write_only_password(
        label: &'static str,
        has_password: bool,
        forgotten_on: &str,
        owner: &str,
        clear: bool,
    ) -> Vec<Field> {
        let input = Field::password("password", label, "new-password").hint(if has_password {
            format!(
                "A password is stored. Leave this blank to keep it; it is not kept if you \
                 change {forgotten_on}."
            )
        } else {
            format!("Leave blank if the {owner} needs none.")
        });
        let mut v = vec![input];
        if has_password {
            v.push(Field::checkbox(
                "clear_password",
                "Remove the stored password",
                clear,
            ));
        }
        v
    }
    pub(super) fn hint(mut self, h: impl Into<String>) -> Field {
        self.hint = h.into();
        self
    }
    pub(super) fn placeholder(mut self, p: impl Into<String>) -> Field {
        self.placeholder = p.into();
        self
    }
    pub(super) fn required(mut self) -> Field {
        self.required = true;
        self
    }
    pub(super) fn autocomplete(mut self, a: &'static str) -> Field {
        self.autocomplete = a;
        self
    }
    pub(super) fn list(mut self, l: &'static str) -> Field {
        self.list = l;
        self
    }
}

/// Puts each error next to its field; returns errors that match no field
/// (shown above the form).
fn attach(fields: &mut [Field], errs: &FieldErrors) -> Option<String> {
    let mut general = Vec::new();
    for (name, msg) in &errs.0 {
        match fields
            .iter_mut()
            .find(|f| f.name == name.as_str() && f.kind != "section")
        {
            Some(f) if f.error.is_none() => f.error = Some(msg.clone()),
            Some(_) => {}
            None => general.push(if name.is_empty() {
                msg.clone()
            } else {
                format!("{name}: {msg}")
            }),
        }
    }
    (!general.is_empty()).then(|| general.join(" "))
}

/// The `<datalist>` of time zone names the setup and settings forms suggest.
pub(super) fn timezones() -> Vec<String> {
    jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .filter(|n| n.contains('/') && !n.starts_with("Etc/") && !n.starts_with("posix/"))
        .collect()
}

/// Writes the config with `f` and waits (bounded) until the daemon runs it.
/// Also the write API's save ([`crate::web::write_api`]).
pub(crate) fn save<T>(
    ctx: &WebCtx,
    f: impl FnOnce(&mut Yaml) -> Result<T, EditError>,
) -> Result<T, EditError> {
    let (out, new_cfg) = ctx.gui.config_file.edit(f)?;
    ctx.gui.reload_now.notify_one();
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        if **ctx.config.read().expect("config lock") == new_cfg {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!("config.yaml was written but not reloaded within {RELOAD_WAIT:?}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

/// The errors to show for a failed edit; a write that failed is a 500.
fn edit_failed(e: EditError) -> Result<FieldErrors, HttpError> {
    match e {
        EditError::Fields(f) => Ok(f),
        EditError::Invalid(m) => Ok(FieldErrors::one("", m)),
        EditError::Io(e) => {
            tracing::error!("writing the config: {e:#}");
            Err(HttpError::new(
                500,
                "config.yaml could not be written (is the data partition full or read-only?)",
            ))
        }
    }
}

/// Saves an edit that has no form to show again (delete, enable): a
/// refused edit is a 400 with its first message.
pub(super) fn save_or_400<T>(
    ctx: &WebCtx,
    f: impl FnOnce(&mut Yaml) -> Result<T, EditError>,
) -> Result<T, HttpError> {
    save(ctx, f).or_else(|e| {
        let errs = edit_failed(e)?;
        Err(HttpError::new(
            400,
            errs.0.first().map(|(_, m)| m.clone()).unwrap_or_default(),
        ))
    })
}

/// A form ready for its page's template.
pub(super) struct Filled {
    /// The inputs, each with its error, if any.
    pub fields: Vec<Field>,
    /// Errors that match no field, shown above the form.
    pub general_error: Option<String>,
    /// 200, or 400 when there are errors.
    pub status: u16,
}

/// A page whose form edits config.yaml; [`run`] drives it.
pub(super) trait FormPage {
    /// The values as typed (strings, so a mistake is shown as typed).
    type Form;
    /// What a successful edit returns, for [`FormPage::done`].
    type Saved;

    /// The form a GET shows: the current settings, or blanks.
    fn initial(&self) -> Self::Form;

    /// The form a POST sent.
    fn read(&self, post: &Form) -> Self::Form;

    /// Checks that need no file, before it is touched. It is left alone when
    /// this adds an error; what the edit needs beyond the typed values (a
    /// password hash) is filled in here. An `Err` answers the request as is.
    fn check(&self, _form: &mut Self::Form, _errs: &mut FieldErrors) -> Result<(), HttpError> {
        Ok(())
    }

    /// The change to the file's tree (run under the config file's lock).
    fn apply(&self, tree: &mut Yaml, form: &Self::Form) -> Result<Self::Saved, EditError>;

    /// The answer once the daemon runs the new file: a redirect
    /// (post/redirect/get), so a reload does not post again.
    fn done(&self, saved: Self::Saved) -> Resp;

    /// The inputs showing `form` (never a password's value).
    fn fields(&self, form: Self::Form) -> Vec<Field>;

    /// The whole page around the filled-in form.
    fn page(&self, form: Filled) -> Result<Resp, HttpError>;
}

/// The GET/POST flow of a [`FormPage`] (see the module comment).
pub(super) fn run<P: FormPage>(ctx: &WebCtx, req: &Req, page: &P) -> Result<Resp, HttpError> {
    let mut errs = FieldErrors::default();
    let form = if req.is_post() {
        let mut form = page.read(&req.form());
        page.check(&mut form, &mut errs)?;
        if errs.is_empty() {
            match save(ctx, |t| page.apply(t, &form)) {
                Ok(saved) => return Ok(page.done(saved)),
                Err(e) => errs = edit_failed(e)?,
            }
        }
        form
    } else {
        page.initial()
    };
    let mut fields = page.fields(form);
    let general_error = attach(&mut fields, &errs);
    page.page(Filled {
        fields,
        general_error,
        status: if errs.is_empty() { 200 } else { 400 },
    })
}

/// The form of `page` as a GET shows it, for a page that answers other
/// posts too (the access page's token actions).
pub(super) fn blank<P: FormPage>(page: &P) -> Filled {
    Filled {
        fields: page.fields(page.initial()),
        general_error: None,
        status: 200,
    }
}
