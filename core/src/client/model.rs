//! Model names: what a model id may be (it goes into Google's URL path) and its one normal
//! form (without `models/`). Routes and request bodies both check names here.

/// Model ids are letters, digits, `.`, `_` and `-`, starting with a letter or digit:
/// no slashes, no percent-encoding, no `..`.
pub fn valid_model(id: &str) -> bool {
    let starts_well = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    starts_well
        && id.len() <= 128
        && !id.contains("..")
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// `models/gemini-3.5-flash` → `gemini-3.5-flash`.
pub(crate) fn normalize_model(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert!(valid_model("gemini-3.1-flash-lite-preview-03-03"));
        assert!(valid_model("gemini-embedding-001"));
        for bad in ["", "..", "a/b", "a%2Fb", ".hidden", "a..b", "a b", "a\\b", "ünï"] {
            assert!(!valid_model(bad), "{bad:?}");
        }
        assert_eq!(normalize_model("models/gemini-3.1-pro-preview"), "gemini-3.1-pro-preview");
    }
}
