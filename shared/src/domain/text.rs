//! Text folding for search: what "ignoring case and accents" means everywhere.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `text` decomposed (Unicode NFKD), without combining marks, lowercased, with runs of
/// whitespace made one space and the ends trimmed: `"  Zoë  ÅSE "` → `"zoe ase"`.
///
/// Used for name prefixes (customers) and FAQ search, on both the stored value and the
/// query, so both sides fold the same way.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` with its first letter upper case (a sentence without the business's name before
/// it).
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_case_accents_and_extra_spaces() {
        assert_eq!(fold("  Zoë  ÅSE "), "zoe ase");
        assert_eq!(fold("José Ñúñez"), "jose nunez");
        assert_eq!(fold("ＡＢＣ"), "abc");
        assert_eq!(fold("陈小明"), "陈小明");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn a_folded_prefix_stays_a_prefix() {
        assert!(fold("Émilie Dupont").starts_with(&fold("EMI")));
    }
}
