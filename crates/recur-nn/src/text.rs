//! Character-level text for language models: a vocabulary, and a validation
//! set drawn from the same distribution as the training text.
//!
//! Holding out the last tenth of a file validates on whatever that tenth
//! happens to be (for a corpus of concatenated sources, mostly one README of
//! prose against training on code). Holding out every tenth block instead
//! spreads validation over the whole text.

use recur_gpu::{Error, Result};

/// A text as character ids, split into training and validation sets.
#[derive(Clone, Debug)]
pub struct CharCorpus {
    /// The distinct characters, sorted: id `i` is `vocab[i]`.
    pub vocab: Vec<char>,
    /// Training ids: every block but the held-out ones, in order.
    pub train: Vec<u32>,
    /// Validation ids: every `every`-th block, in order.
    pub val: Vec<u32>,
}

impl CharCorpus {
    /// Splits `text` into blocks of `block` characters and holds out every
    /// `every`-th one (blocks `every − 1`, `2·every − 1`, ...) for
    /// validation; a final partial block goes to training. Errors when the
    /// text is too short to hold out a block, or the sizes are zero.
    pub fn split(text: &str, block: usize, every: usize) -> Result<Self> {
        let op = "CharCorpus::split";
        if block == 0 || every < 2 {
            return Err(Error::InvalidArgument {
                op,
                what: format!("block {block} and every {every}: need block ≥ 1 and every ≥ 2"),
            });
        }
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let ids: Vec<u32> = text
            .chars()
            .map(|c| vocab.binary_search(&c).unwrap_or(0) as u32)
            .collect();
        if ids.len() < block * every {
            return Err(Error::InvalidArgument {
                op,
                what: format!(
                    "{} characters are too few to hold out one block of {block} in {every}",
                    ids.len()
                ),
            });
        }
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (k, chunk) in ids.chunks(block).enumerate() {
            let held = k % every == every - 1 && chunk.len() == block;
            if held { &mut val } else { &mut train }.extend_from_slice(chunk);
        }
        Ok(Self { vocab, train, val })
    }

    /// The character of id `id`.
    pub fn char_of(&self, id: u32) -> char {
        self.vocab.get(id as usize).copied().unwrap_or('?')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenth_block_is_held_out_and_nothing_is_lost() {
        // 25 blocks of 4: "aaaa", "bbbb", ... cycling through 7 letters.
        let text: String = (0..25)
            .map(|k| char::from(b'a' + (k % 7) as u8).to_string().repeat(4))
            .collect::<String>()
            + "xy";
        let c = CharCorpus::split(&text, 4, 10).unwrap();
        assert_eq!(c.train.len() + c.val.len(), text.chars().count());
        // Blocks 9 and 19 are held out: letters 9 % 7 = c and 19 % 7 = f.
        let val: String = c.val.iter().map(|&i| c.char_of(i)).collect();
        assert_eq!(val, "ccccffff");
        let train: String = c.train.iter().map(|&i| c.char_of(i)).collect();
        assert!(train.starts_with("aaaabbbbcccc") && train.ends_with("xy"));
        assert_eq!(train.len(), 23 * 4 + 2);
        assert_eq!(c.vocab.len(), 9);
    }

    #[test]
    fn too_short_or_degenerate_splits_are_errors() {
        assert!(CharCorpus::split("abc", 4, 10).is_err());
        assert!(CharCorpus::split("abcdefgh", 0, 2).is_err());
        assert!(CharCorpus::split("abcdefgh", 2, 1).is_err());
        let c = CharCorpus::split("abcdefgh", 2, 2).unwrap();
        assert_eq!((c.train.len(), c.val.len()), (4, 4));
    }
}
