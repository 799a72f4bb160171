//! Page checks for public pages (booking, call): overflow on a phone, controls without an
//! accessible name, tap targets too small, console errors and CSP violations.
//!
//! Elements are named for messages as `tag#id`, `tag[name=…]` or `tag.class`, with their
//! text (up to 30 characters) and, for tap targets, their size in CSS pixels.

use serde_json::{Value, json};

use super::Browser;

/// The global the recorder script keeps CSP violations in (one list per document).
const RECORDER: &str = "__browserTestRecorder";

/// JavaScript: `describe(el)`, an element's name for messages.
const DESCRIBE: &str = r#"
const describe = (el) => {
  let d = el.tagName.toLowerCase();
  if (el.id) d += '#' + el.id;
  else if (el.getAttribute('name')) d += '[name=' + el.getAttribute('name') + ']';
  else if (el.classList.length) d += '.' + [...el.classList].join('.');
  if (el.tagName === 'INPUT') d += '[type=' + el.type + ']';
  const text = (el.innerText || el.value || '').trim().replace(/\s+/g, ' ');
  if (text && el.tagName !== 'SELECT') d += ' "' + text.slice(0, 30) + '"';
  return d;
};
const visible = (el) => {
  const r = el.getBoundingClientRect();
  const s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== 'hidden';
};
"#;

/// JavaScript body: the controls without an accessible name.
const UNLABELLED: &str = r#"
const named = (el) => {
  const text = (s) => (s || '').trim() !== '';
  if (text(el.getAttribute('aria-label'))) return true;
  const ids = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean);
  if (ids.some((id) => text(document.getElementById(id)?.textContent))) return true;
  if ([...(el.labels || [])].some((l) => text(l.textContent))) return true;
  if (el.tagName === 'BUTTON') return text(el.textContent)
    || [...el.querySelectorAll('img[alt]')].some((i) => text(i.alt));
  if (el.tagName === 'INPUT') {
    if (['submit', 'reset'].includes(el.type)) return true; // "Submit" / "Reset" by default
    if (el.type === 'button') return text(el.value);
    if (el.type === 'image') return text(el.alt);
  }
  return false;
};
return [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && visible(el) && !named(el))
  .map(describe);
"#;

/// JavaScript body: the visible tap targets smaller than `arguments[0]` CSS pixels.
const SMALL_TARGETS: &str = r#"
const min = arguments[0];
const targets = 'button, a[href], input:not([type=hidden]), select, textarea, [role=button]';
return [...document.querySelectorAll(targets)].filter(visible).flatMap((el) => {
  let r = el.getBoundingClientRect();
  // A checkbox or radio button is tapped through its label too: count the larger box.
  if (['checkbox', 'radio'].includes(el.type)) {
    for (const label of el.labels || []) {
      const l = label.getBoundingClientRect();
      if (l.width * l.height > r.width * r.height) r = l;
    }
  }
  if (r.width >= min && r.height >= min) return [];
  return [describe(el) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height)];
});
"#;

impl Browser {
    /// Whether the page is wider than the viewport: the root's `scrollWidth` over its
    /// `clientWidth` (the layout viewport's width). Not over `window.innerWidth`: on a
    /// [mobile](super::Viewport::mobile) viewport chromium zooms out to show a wider page
    /// whole, and `innerWidth` grows with it (375 → 608 for a 600 px wide element).
    pub async fn horizontal_overflow(&self) -> bool {
        let js = "const root = document.documentElement; \
                  return root.scrollWidth > root.clientWidth";
        self.eval(js).await == Value::Bool(true)
    }

    /// Every visible `input` (not `hidden`), `select`, `textarea` and `button` without an
    /// accessible name: a `<label for>` or wrapping `<label>` with text, `aria-label`,
    /// `aria-labelledby` naming elements with text, a button's text (or an `img alt`
    /// in it), an input button's value. `title` and `placeholder` do not count.
    pub async fn unlabelled_controls(&self) -> Vec<String> {
        strings(self.eval(&format!("{DESCRIBE}{UNLABELLED}")).await)
    }

    /// Every visible button, link, form control or `role=button` whose box is under
    /// `min_px` CSS pixels in width or height (WCAG 2.5.8 asks 24, 2.5.5 and Apple 44),
    /// as `"button#id \"Text\" 80x20"`. Links inside text count too.
    pub async fn small_tap_targets(&self, min_px: u32) -> Vec<String> {
        let js = format!("{DESCRIBE}{SMALL_TARGETS}");
        let found = self
            .client
            .execute(&js, vec![json!(min_px)])
            .await
            .unwrap_or_else(|e| panic!("small tap targets: {e}"));
        strings(found)
    }

    /// The messages of every `SEVERE` entry of the browser log since the session started:
    /// `console.error`, uncaught exceptions, failed loads, CSP violations (source
    /// `security`), each as `"<source>: <message>"`.
    pub async fn console_errors(&self) -> Vec<String> {
        let fresh = self.extension("se/log", json!({"type": "browser"})).await;
        let mut log = self.log.lock().expect("log lock");
        log.extend(fresh.as_array().cloned().unwrap_or_default());
        log.iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| {
                let source = e["source"].as_str().unwrap_or("?");
                format!("{source}: {}", e["message"].as_str().unwrap_or_default())
            })
            .collect()
    }

    /// The `securitypolicyviolation` events of the current document, from its first
    /// script on, as `"<directive> <blocked URI>"` (`inline` for inline scripts and
    /// handlers, `eval`, or the URL).
    pub async fn csp_violations(&self) -> Vec<String> {
        let js = format!("return (window.{RECORDER} || {{}}).csp || []");
        strings(self.eval(&js).await)
    }

    /// Makes every new document record its CSP violations before its own scripts run
    /// (a DevTools script: the page's CSP does not apply to it).
    pub(super) async fn install_recorder(&self) {
        let source = format!(
            "window.{RECORDER} = {{ csp: [] }};\n\
             document.addEventListener('securitypolicyviolation', (e) =>\n\
               window.{RECORDER}.csp.push(e.effectiveDirective + ' ' + (e.blockedURI || 'inline')));"
        );
        self.devtools(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": source}),
        )
        .await;
    }
}

/// The strings of a JSON array (anything else: none).
fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}
