//! The crossings between JavaScript and the library: a JS function that fetches a model's
//! files, a JS progress callback as the library's `Progress` observer, and library errors
//! as JS `Error`s carrying the library's message.

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A library error (or any message) as a JS `Error`, which rejects a promise or is thrown.
pub fn js_error(message: impl std::fmt::Display) -> JsValue {
    JsError::new(&message.to_string()).into()
}

/// The message of a value a JS promise rejected with (an `Error`'s `message`, a string, or
/// the value as JS prints it).
pub fn message_of(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        return s;
    }
    if let Ok(m) = js_sys::Reflect::get(v, &JsValue::from_str("message"))
        && let Some(s) = m.as_string()
    {
        return s;
    }
    format!("{v:?}")
}

/// Calls `fetch_file(file)` (a JS function returning a promise of a `Uint8Array`, an
/// `ArrayBuffer`, or `null` when the model has no such file) and awaits the bytes.
pub async fn fetch_file(
    fetch_file: &Function,
    model: &str,
    file: &str,
) -> wgbert::Result<Option<Vec<u8>>> {
    let failed = |e: &JsValue| wgbert::Error::Hub {
        source_name: model.to_string(),
        message: format!("fetching {file}: {}", message_of(e)),
    };
    let called = fetch_file
        .call1(&JsValue::NULL, &JsValue::from_str(file))
        .map_err(|e| failed(&e))?;
    let value = JsFuture::from(Promise::resolve(&called))
        .await
        .map_err(|e| failed(&e))?;
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    Ok(Some(Uint8Array::new(&value).to_vec()))
}

/// A JS function `(event, what, n, item)` as the library's progress observer: `event` is
/// "start" (`n`: the job's total), "advance" (`n` more done, `item` the current one) or
/// "finish".
pub struct JsProgress(pub Function);

// SAFETY: wasm32 without atomics has one thread; the observer never leaves it.
unsafe impl Send for JsProgress {}
// SAFETY: as above.
unsafe impl Sync for JsProgress {}

impl JsProgress {
    fn call(&self, event: &str, what: &str, n: u64, item: &str) {
        let args = js_sys::Array::of4(
            &JsValue::from_str(event),
            &JsValue::from_str(what),
            &JsValue::from_f64(n as f64),
            &JsValue::from_str(item),
        );
        // A throwing callback must not fail the load; the page sees its own error.
        if let Err(e) = self.0.apply(&JsValue::NULL, &args) {
            web_sys::console::warn_1(&e);
        }
    }
}

impl wgbert::progress::Progress for JsProgress {
    fn start(&self, what: &str, total: u64) {
        self.call("start", what, total, "");
    }
    fn advance(&self, n: u64, item: &str) {
        self.call("advance", "", n, item);
    }
    fn finish(&self) {
        self.call("finish", "", 0, "");
    }
}
