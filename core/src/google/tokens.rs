//! Tokens Google reports for an answer, read as its bytes pass (never buffered): the last
//! usage object in the answer — `usageMetadata` (native), `usage` (OpenAI-shaped, and the
//! Interactions API) — which in a stream is the final chunk's. Only the tail of the body is
//! kept ([`TAIL`] bytes), which holds that object in every shape Google answers with.

use serde::Deserialize;

/// The bytes of an answer's end a [`Meter`] keeps.
pub(crate) const TAIL: usize = 16 * 1024;

/// Tokens of one answer (or a sum of answers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// The prompt (cached tokens included).
    pub prompt: u64,
    /// The answer.
    pub completion: u64,
    /// Thinking.
    pub thinking: u64,
    /// Of the prompt, read from a cache.
    pub cached: u64,
}

impl Tokens {
    /// What a daily token limit counts: prompt, answer and thinking.
    pub fn total(&self) -> u64 {
        self.prompt.saturating_add(self.completion).saturating_add(self.thinking)
    }

    /// Adds `more`.
    pub fn add(&mut self, more: Tokens) {
        self.prompt = self.prompt.saturating_add(more.prompt);
        self.completion = self.completion.saturating_add(more.completion);
        self.thinking = self.thinking.saturating_add(more.thinking);
        self.cached = self.cached.saturating_add(more.cached);
    }

    /// Is it nothing?
    pub fn is_zero(&self) -> bool {
        *self == Tokens::default()
    }
}

/// Reads the tokens of an answer whose bytes pass through it in chunks.
#[derive(Debug, Default)]
pub struct Meter {
    tail: Vec<u8>,
}

/// The keys a usage object goes under.
const USAGE_KEYS: [&[u8]; 2] = [b"\"usageMetadata\"", b"\"usage\""];

impl Meter {
    /// A meter with nothing read yet.
    pub fn new() -> Self {
        Meter::default()
    }

    /// The next chunk of the answer.
    pub fn feed(&mut self, chunk: &[u8]) {
        if chunk.len() >= TAIL {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - TAIL..]);
            return;
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
    }

    /// The tokens of the last usage object seen (nothing if none reads).
    pub fn tokens(&self) -> Tokens {
        tokens_in(&self.tail)
    }
}

/// The tokens of the last usage object in `bytes`.
pub(crate) fn tokens_in(bytes: &[u8]) -> Tokens {
    let mut end = bytes.len();
    while let Some((at, key)) = last_key(&bytes[..end]) {
        if let Some(tokens) = object_after(&bytes[at + key..]).and_then(read_usage) {
            return tokens;
        }
        end = at;
    }
    Tokens::default()
}

/// Where the last usage key in `bytes` starts, and its length. One backward pass over the
/// quotes looks for both keys: searching for each apart scans the whole answer for the one
/// it does not hold (a native answer's `"usageMetadata"` starts like `"usage"` but is not it).
fn last_key(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut end = bytes.len();
    while let Some(at) = memchr::memrchr(b'"', &bytes[..end]) {
        if bytes.get(at + 1) == Some(&b'u') {
            if let Some(key) = USAGE_KEYS.iter().find(|key| bytes[at..].starts_with(key)) {
                return Some((at, key.len()));
            }
        }
        end = at;
    }
    None
}

/// The JSON object right after a key (`: {...}`), whole, if it ends in `bytes`.
fn object_after(bytes: &[u8]) -> Option<&[u8]> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace() && *b != b':')?;
    if bytes.get(start) != Some(&b'{') {
        return None;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(&bytes[start..=i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// A usage object in any of Google's shapes, as its fields (read straight into these, without
/// building a `serde_json::Value`: the usage of every answer is read).
#[derive(Deserialize)]
struct Usage {
    // Native (`usageMetadata`).
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "toolUsePromptTokenCount")]
    tool_use_prompt_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    cached_content_token_count: Option<u64>,
    #[serde(rename = "totalTokenCount")]
    total_token_count: Option<u64>,
    // The Interactions API.
    total_input_tokens: Option<u64>,
    total_tool_use_tokens: Option<u64>,
    total_output_tokens: Option<u64>,
    total_thought_tokens: Option<u64>,
    total_cached_tokens: Option<u64>,
    total_tokens: Option<u64>,
    // OpenAI's shape.
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    completion_tokens_details: Option<Details>,
    prompt_tokens_details: Option<Details>,
}

/// OpenAI's `*_tokens_details`.
#[derive(Deserialize)]
struct Details {
    reasoning_tokens: Option<u64>,
    cached_tokens: Option<u64>,
}

/// The tokens of a usage object in any of Google's shapes (`None`: not one of them).
fn read_usage(object: &[u8]) -> Option<Tokens> {
    let usage: Usage = serde_json::from_slice(object).ok()?;
    let n = |field: Option<u64>| field.unwrap_or(0);
    let tokens = if usage.prompt_token_count.is_some() || usage.total_token_count.is_some() {
        Tokens {
            prompt: n(usage.prompt_token_count).saturating_add(n(usage.tool_use_prompt_token_count)),
            completion: n(usage.candidates_token_count),
            thinking: n(usage.thoughts_token_count),
            cached: n(usage.cached_content_token_count),
        }
    } else if usage.total_input_tokens.is_some() || usage.total_tokens.is_some() && usage.prompt_tokens.is_none() {
        Tokens {
            prompt: n(usage.total_input_tokens).saturating_add(n(usage.total_tool_use_tokens)),
            completion: n(usage.total_output_tokens),
            thinking: n(usage.total_thought_tokens),
            cached: n(usage.total_cached_tokens),
        }
    } else if usage.prompt_tokens.is_some() {
        // OpenAI's shape: `completion_tokens` includes the reasoning tokens it details.
        let thinking = n(usage.completion_tokens_details.and_then(|d| d.reasoning_tokens));
        Tokens {
            prompt: n(usage.prompt_tokens),
            completion: n(usage.completion_tokens).saturating_sub(thinking),
            thinking,
            cached: n(usage.prompt_tokens_details.and_then(|d| d.cached_tokens)),
        }
    } else {
        return None;
    };
    Some(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metered(body: &[u8], size: usize) -> Tokens {
        let mut meter = Meter::new();
        body.chunks(size.max(1)).for_each(|c| meter.feed(c));
        meter.tokens()
    }

    #[test]
    fn native_openai_and_interactions_shapes() {
        let native = br#"{"candidates":[{"content":{"parts":[{"text":"usage"}]}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":5,"thoughtsTokenCount":3,"cachedContentTokenCount":2,"totalTokenCount":16},"modelVersion":"m"}"#;
        assert_eq!(metered(native, 7), Tokens { prompt: 8, completion: 5, thinking: 3, cached: 2 });
        let openai = br#"{"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":9,"total_tokens":17,"completion_tokens_details":{"reasoning_tokens":4}}}"#;
        assert_eq!(metered(openai, 5), Tokens { prompt: 8, completion: 5, thinking: 4, cached: 0 });
        let interaction = br#"{"id":"v1_x","outputs":[],"usage":{"total_input_tokens":8,"total_output_tokens":12,"total_tokens":20}}"#;
        assert_eq!(metered(interaction, 3), Tokens { prompt: 8, completion: 12, thinking: 0, cached: 0 });
        assert_eq!(metered(interaction, 3).total(), 20);
    }

    #[test]
    fn a_stream_counts_its_last_usage_only() {
        let mut stream = Vec::new();
        for i in 1..=50u64 {
            stream.extend_from_slice(
                format!("data: {{\"candidates\":[],\"usageMetadata\":{{\"promptTokenCount\":8,\"candidatesTokenCount\":{i}}}}}\r\n\r\n")
                    .as_bytes(),
            );
        }
        stream.extend_from_slice(&vec![b' '; TAIL * 3]);
        stream.extend_from_slice(
            b"data: {\"usage\": {\"prompt_tokens\": 8, \"completion_tokens\": 77}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(metered(&stream, 1000).completion, 77);
        assert_eq!(metered(&stream, TAIL + 5).completion, 77);
    }

    #[test]
    fn text_that_mentions_usage_is_not_usage() {
        let body = br#"{"text":"\"usage\": {\"prompt_tokens\": 999}","usage":"none"}"#;
        assert_eq!(metered(body, 4), Tokens::default());
        assert_eq!(metered(b"\"usageMetadata\": {\"promptTokenCount\": 3", 8), Tokens::default(), "cut off");
    }
}
