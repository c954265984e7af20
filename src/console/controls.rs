//! Form controls: every field labelled, refilled after a refused write and
//! marked (`aria-invalid`, its message tied by `aria-describedby`) when it
//! is the one at fault; the CSRF token every form carries.

use maud::{html, Markup};

use super::layout::Ctx;
use super::session::Signed;

/// The session's CSRF token, for every form.
pub(in crate::console) fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed.csrf); }
}

/// The form's own name, so a refused one is the one refilled.
pub(in crate::console) fn form_name(name: &str) -> Markup {
    html! { input type="hidden" name="form" value=(name); }
}

/// A labelled input of form `form`, refilled and marked when refused.
pub(in crate::console) struct Field<'a> {
    pub(in crate::console) form: &'a str,
    pub(in crate::console) name: &'a str,
    pub(in crate::console) label: &'a str,
    pub(in crate::console) kind: &'a str,
    pub(in crate::console) value: Option<&'a str>,
    pub(in crate::console) hint: Option<&'a str>,
    pub(in crate::console) required: bool,
}

impl<'a> Field<'a> {
    pub(in crate::console) fn text(form: &'a str, name: &'a str, label: &'a str) -> Self {
        Self {
            form,
            name,
            label,
            kind: "text",
            value: None,
            hint: None,
            required: false,
        }
    }

    pub(in crate::console) fn kind(mut self, kind: &'a str) -> Self {
        self.kind = kind;
        self
    }

    pub(in crate::console) fn value(mut self, value: Option<&'a str>) -> Self {
        self.value = value;
        self
    }

    pub(in crate::console) fn hint(mut self, hint: &'a str) -> Self {
        self.hint = Some(hint);
        self
    }

    pub(in crate::console) fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub(in crate::console) fn render(&self, ctx: &Ctx) -> Markup {
        let id = format!("{}-{}", self.form, self.name);
        let invalid = ctx.invalid(self.form, self.name);
        let hint_id = format!("{id}-hint");
        let error_id = format!("{id}-error");
        let described = match (self.hint.is_some(), invalid) {
            (true, true) => Some(format!("{hint_id} {error_id}")),
            (true, false) => Some(hint_id.clone()),
            (false, true) => Some(error_id.clone()),
            (false, false) => None,
        };
        let value = ctx.value(self.form, self.name).or(self.value);
        html! {
            div.field {
                label for=(id) { (self.label) }
                @if let Some(h) = self.hint { span.hint id=(hint_id) { (h) } }
                input id=(id) type=(self.kind) name=(self.name) value=[value]
                    required[self.required] aria-invalid=[invalid.then_some("true")]
                    aria-describedby=[described];
                @if invalid {
                    span.field-error id=(error_id) {
                        @if let Some(n) = &ctx.notice { (n.text) }
                    }
                }
            }
        }
    }
}

/// A `<select>` of form `form`; `options` are (value, text).
pub(in crate::console) fn select(
    ctx: &Ctx,
    form: &str,
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: Option<&str>,
) -> Markup {
    let id = format!("{form}-{name}");
    let selected = ctx.value(form, name).or(selected);
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) aria-invalid=[ctx.invalid(form, name).then_some("true")] {
                @for (value, text) in options {
                    option value=(value) selected[selected == Some(value.as_str())] { (text) }
                }
            }
        }
    }
}

/// A one-button form posting to `action` (its confirmation comes next).
pub(in crate::console) fn button_form(
    signed: &Signed,
    action: &str,
    label: &str,
    danger: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(signed))
            button.danger[danger] type="submit" { (label) }
        }
    }
}
