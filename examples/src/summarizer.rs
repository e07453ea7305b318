//! An extractive summarizer shared by the HTTP and gRPC examples: it scores each sentence by
//! how frequent its content words are in the whole text and keeps the best sentences, in
//! their original order. No model, no network: enough to make the examples do real work.
//!
//! The summary is one line of plain text that ends with a newline, which is what the HTTP
//! example answers (so `curl` leaves the shell prompt on a line of its own); the gRPC example
//! drops the newline from its `summary` field.

use std::collections::HashMap;

/// Words too common to say what a text is about.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "more", "most", "my",
    "no", "not", "of", "on", "one", "or", "our", "out", "she", "so", "some", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "up", "us", "was",
    "we", "were", "what", "when", "which", "who", "will", "with", "would", "you", "your",
];

/// Summarizes `text` into at most `max_sentences` sentences (and at most a third of them,
/// rounded up), kept in their original order, joined by spaces and followed by a newline. A
/// text this short already comes back trimmed.
pub fn summarize(text: &str, max_sentences: usize) -> String {
    let mut summary = choose_sentences(text, max_sentences).join(" ");
    summary.push('\n');
    summary
}

/// The sentences of `text` a summary keeps, in their original order.
fn choose_sentences(text: &str, max_sentences: usize) -> Vec<&str> {
    let sentences = split_sentences(text);
    let keep = max_sentences.max(1).min(sentences.len().div_ceil(3)).max(1);
    if sentences.len() <= keep {
        return sentences;
    }

    let mut frequency: HashMap<String, f64> = HashMap::new();
    for sentence in &sentences {
        for word in content_words(sentence) {
            *frequency.entry(word).or_default() += 1.0;
        }
    }
    let top = frequency.values().copied().fold(1.0, f64::max);

    let mut scored: Vec<(usize, f64)> = sentences
        .iter()
        .enumerate()
        .map(|(index, sentence)| {
            let words = content_words(sentence);
            let score = if words.is_empty() {
                0.0
            } else {
                // Average normalised frequency, so long sentences do not win by length alone.
                words.iter().map(|w| frequency[w] / top).sum::<f64>() / words.len() as f64
            };
            // A small lead bonus: openings tend to state the topic.
            let lead_bonus = if index == 0 { 0.1 } else { 0.0 };
            (index, score + lead_bonus)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored.iter().take(keep).map(|(index, _)| *index).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|index| sentences[index]).collect()
}

/// Splits on `.`, `!` and `?` followed by white space (or the end), and on blank lines.
fn split_sentences(text: &str) -> Vec<&str> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let ends_sentence = matches!(b, b'.' | b'!' | b'?')
            && bytes
                .get(i + 1)
                .is_none_or(|next| next.is_ascii_whitespace());
        let paragraph_break = b == b'\n' && bytes.get(i + 1) == Some(&b'\n');
        if ends_sentence || paragraph_break {
            let end = if ends_sentence { i + 1 } else { i };
            push_trimmed(&mut sentences, &text[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut sentences, &text[start..]);
    sentences
}

fn push_trimmed<'a>(sentences: &mut Vec<&'a str>, sentence: &'a str) {
    let sentence = sentence.trim();
    if !sentence.is_empty() {
        sentences.push(sentence);
    }
}

fn content_words(sentence: &str) -> Vec<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 1)
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_central_sentences_in_order() {
        let text = "Rust is a systems language. Rust gives memory safety without a garbage \
                    collector. The weather was nice yesterday. Many teams adopt Rust for \
                    safety and speed. Lunch was pasta.";
        let summary = summarize(text, 2);
        assert_eq!(
            summary,
            "Rust is a systems language. Many teams adopt Rust for safety and speed.\n"
        );
    }

    #[test]
    fn short_texts_come_back_whole() {
        assert_eq!(
            summarize("  One sentence only.  ", 3),
            "One sentence only.\n"
        );
        assert_eq!(summarize("", 3), "\n");
    }
}
