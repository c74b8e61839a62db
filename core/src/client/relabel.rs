//! The answer to an aliased request carries the client's model name back: every JSON string
//! that is exactly the Gemini model (`"gemini-3.5-flash"` or `"models/gemini-3.5-flash"`)
//! becomes the alias, as the bytes pass (streams included: never buffered, a pattern split
//! between two chunks is still found).
//!
//! A quote inside a JSON string is always escaped (`\"`), so a quoted model name in the
//! bytes is a whole string value — a model's text that mentions the model is left alone.

/// Rewrites the model's name to the alias in a body that passes through in chunks.
#[derive(Debug, Clone)]
pub struct Relabel {
    /// (what Google wrote, what the client reads), quotes included.
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The end of the last chunk that may begin a pattern.
    carry: Vec<u8>,
}

impl Relabel {
    /// Answers naming `model` (the Gemini model) will name `alias` (the client's name).
    pub fn new(model: &str, alias: &str) -> Self {
        let quoted = |name: &str| format!("\"{name}\"").into_bytes();
        let pairs = vec![
            (quoted(&format!("models/{model}")), quoted(&format!("models/{alias}"))),
            (quoted(model), quoted(alias)),
        ];
        Relabel { pairs, carry: Vec::new() }
    }

    /// The next chunk, rewritten (what may begin a pattern waits for the next chunk).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(input.len() + 16);
        let mut at = 0;
        while let Some(offset) = input[at..].iter().position(|&b| b == b'"') {
            let quote = at + offset;
            out.extend_from_slice(&input[at..quote]);
            let rest = &input[quote..];
            if let Some((from, to)) = self.pairs.iter().find(|(from, _)| rest.starts_with(from)) {
                out.extend_from_slice(to);
                at = quote + from.len();
            } else if self.pairs.iter().any(|(from, _)| rest.len() < from.len() && from.starts_with(rest)) {
                self.carry = rest.to_vec();
                return out;
            } else {
                out.push(b'"');
                at = quote + 1;
            }
        }
        out.extend_from_slice(&input[at..]);
        out
    }

    /// What was held back at the end of the body.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(relabel: &mut Relabel, body: &[u8], size: usize) -> Vec<u8> {
        let mut out: Vec<u8> = body.chunks(size).flat_map(|c| relabel.feed(c)).collect();
        out.extend(relabel.finish());
        out
    }

    #[test]
    fn the_model_becomes_the_alias_whatever_the_chunks() {
        let body = br#"data: {"model":"gemini-3.5-flash","text":"I am \"gemini-3.5-flash\"","m":"models/gemini-3.5-flash","x":"gemini-3.5-flash-lite"}"#;
        let want = br#"data: {"model":"gpt-4o","text":"I am \"gemini-3.5-flash\"","m":"models/gpt-4o","x":"gemini-3.5-flash-lite"}"#;
        for size in [1, 2, 3, 7, 16, body.len()] {
            let mut relabel = Relabel::new("gemini-3.5-flash", "gpt-4o");
            assert_eq!(String::from_utf8_lossy(&through(&mut relabel, body, size)), String::from_utf8_lossy(want));
        }
    }

    #[test]
    fn a_body_ending_in_a_prefix_keeps_it() {
        let mut relabel = Relabel::new("gemini-3.5-flash", "gpt-4o");
        assert_eq!(through(&mut relabel, b"x \"gemini-3", 4), b"x \"gemini-3");
    }
}
