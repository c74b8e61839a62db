//! A body the runtime streams (Google's answer), read chunk by chunk straight from its
//! JavaScript reader. A body read to its end is left as it is; one dropped before its end is
//! cancelled (Google's connection is not kept for bytes nobody reads). `worker`'s `ByteStream`
//! (wasm-streams) releases its reader's lock when dropped, and the Streams spec makes each
//! release create a `TypeError` (with its stack trace): a cost every answer paid.

use futures_util::Stream;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

#[wasm_bindgen]
extern "C" {
    /// What a reader's `read()` resolves to: `{ done, value }` (read as properties, without
    /// a JavaScript string made for each name on every chunk).
    type ReadResult;
    #[wasm_bindgen(method, getter)]
    fn done(this: &ReadResult) -> bool;
    #[wasm_bindgen(method, getter)]
    fn value(this: &ReadResult) -> JsValue;
}

pub(crate) struct Chunks {
    reader: Option<web_sys::ReadableStreamDefaultReader>,
    ended: bool,
}

impl Chunks {
    /// The chunks of `stream` (locked to this reader from now on).
    pub(crate) fn of(stream: &web_sys::ReadableStream) -> Self {
        let reader = stream.get_reader().dyn_into::<web_sys::ReadableStreamDefaultReader>().ok();
        Chunks { ended: reader.is_none(), reader }
    }

    /// A body without chunks.
    pub(crate) fn none() -> Self {
        Chunks { reader: None, ended: true }
    }

    /// The next chunk; `None` at the end. A read that fails is an error, and the end.
    pub(crate) async fn next(&mut self) -> Option<worker::Result<Vec<u8>>> {
        let reader = self.reader.as_ref().filter(|_| !self.ended)?;
        let read = match JsFuture::from(reader.read()).await {
            Ok(read) => read,
            Err(e) => {
                self.ended = true;
                return Some(Err(worker::Error::from(e)));
            }
        };
        let read: ReadResult = read.unchecked_into();
        if read.done() {
            self.ended = true;
            return None;
        }
        Some(Ok(js_sys::Uint8Array::new(&read.value()).to_vec()))
    }

    /// The rest of the chunks as a stream.
    pub(crate) fn into_stream(self) -> impl Stream<Item = worker::Result<Vec<u8>>> {
        futures_util::stream::unfold(self, |mut chunks| async move { chunks.next().await.map(|chunk| (chunk, chunks)) })
    }
}

impl Drop for Chunks {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.as_ref().filter(|_| !self.ended) {
            // The promise settles on its own; nothing waits for it.
            let _ = reader.cancel();
        }
    }
}
