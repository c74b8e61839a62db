//! Uploads: the size an upload says, against `max_upload_bytes` ([`upload_fits`]), and Google's
//! upload URL — which session it names ([`upload_session`]) and the proxy's own, rebuilt from
//! that session alone ([`proxied_upload_url`]).

use crate::client::envelope::ErrorReply;
use crate::google::resource::{Kind, Resource};

/// Checks an upload against `max_upload_bytes` (`limit`): the size a session announces when it
/// starts (`x-goog-upload-header-content-length`), or a piece's `content-length` (`announced`:
/// the header's text, if any). The bytes stream through: nothing else bounds them, so a size
/// that is missing (a chunked piece, a start that names none) or that does not read as a
/// number (one too large for 64 bits among them) is refused, never let through.
pub fn upload_fits(announced: Option<&str>, limit: u64) -> Result<(), ErrorReply> {
    let Some(text) = announced.map(str::trim) else {
        return Err(ErrorReply::new(
            411,
            "length_required",
            "An upload must say its size (`Content-Length` on its bytes, `X-Goog-Upload-Header-Content-Length` when it starts).",
        ));
    };
    match text.parse::<u64>() {
        Ok(size) if size <= limit => Ok(()),
        Ok(_) => Err(upload_too_large(limit)),
        Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Err(upload_too_large(limit)),
        Err(_) => {
            Err(ErrorReply::bad_request("invalid_upload_size", "An upload's size is not a whole number of bytes."))
        }
    }
}

fn upload_too_large(limit: u64) -> ErrorReply {
    ErrorReply::new(
        413,
        "upload_too_large",
        format!("The upload is larger than this proxy accepts ({limit} bytes: `max_upload_bytes`)."),
    )
}

/// The upload session Google's `x-goog-upload-url` names (its `upload_id`).
pub fn upload_session(google_url: &str) -> Option<Resource> {
    let query = google_url.split_once('?')?.1;
    let id = query.split('&').find_map(|pair| pair.strip_prefix("upload_id="))?;
    Resource::new(Kind::Upload, id)
}

/// Google's upload URL, rebuilt on the proxy's own origin (`https://host`) from the session's
/// id alone — `/upload/{version}/files?upload_id=…&upload_protocol=resumable` — so nothing
/// else of Google's URL (a `key=` it may carry among them) ever reaches the client. `None`
/// if the URL names no session.
pub fn proxied_upload_url(google_url: &str, own_origin: &str) -> Option<String> {
    let session = upload_session(google_url)?;
    let version = if google_url.contains("/upload/v1/files") { "v1" } else { "v1beta" };
    Some(format!("{own_origin}/upload/{version}/files?upload_id={}&upload_protocol=resumable", session.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_must_say_its_size_and_fit() {
        assert_eq!(upload_fits(Some("100"), 100), Ok(()));
        let status = |announced: Option<&str>| upload_fits(announced, 100).map_err(|e| e.status);
        assert_eq!(status(Some("101")), Err(413));
        assert_eq!(status(Some("99999999999999999999999999")), Err(413), "a size past 64 bits is too large");
        assert_eq!(status(None), Err(411));
        assert_eq!(status(Some("-1")), Err(400));
        assert_eq!(status(Some("")), Err(400));
    }

    #[test]
    fn an_upload_url_is_rebuilt_from_its_session_alone() {
        let url =
            "https://generativelanguage.googleapis.com/upload/v1beta/files?upload_id=AB-c_1&upload_protocol=resumable";
        assert_eq!(upload_session(url).map(|r| r.name()).as_deref(), Some("uploads/AB-c_1"));
        assert_eq!(
            proxied_upload_url(url, "http://127.0.0.1:7676").as_deref(),
            Some("http://127.0.0.1:7676/upload/v1beta/files?upload_id=AB-c_1&upload_protocol=resumable")
        );
        // Nothing but the session's id is kept: never a key Google's URL may carry.
        let with_key = "https://generativelanguage.googleapis.com/upload/v1/files?key=AIzaSECRET&upload_id=u1&x=AIzaB";
        assert_eq!(
            proxied_upload_url(with_key, "https://p").as_deref(),
            Some("https://p/upload/v1/files?upload_id=u1&upload_protocol=resumable")
        );
        assert_eq!(
            proxied_upload_url("https://generativelanguage.googleapis.com/upload/v1beta/files?key=k", "https://p"),
            None
        );
    }
}
