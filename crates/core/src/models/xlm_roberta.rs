//! XLM-RoBERTa as transformers' `XLMRobertaModel` computes it: BERT's post-norm network
//! (`super::bert`) with fairseq's position ids. A token that is not the padding token sits
//! at `padding_idx + 1 + (tokens before it that are not padding)`; a padding token sits at
//! `padding_idx` and does not advance the count (PyLate pads and expands with the MASK
//! token, so only a `<pad>` written in the text itself is one).

use candle_core::Tensor;

use super::bert::Bert;
use super::Packed;
use crate::config::Fields;
use crate::error::{Error, Result};
use crate::weights::WeightStore;

/// Name prefixes of XLM-RoBERTa checkpoints: none (`XLMRobertaModel` as PyLate saves it),
/// `roberta.` (`XLMRobertaForMaskedLM`), `model.`.
const PREFIXES: &[&str] = &["", "roberta.", "model."];

pub(crate) struct XlmRoberta {
    bert: Bert,
    padding_idx: u32,
}

impl XlmRoberta {
    pub(crate) fn load(config: &Fields, store: WeightStore) -> Result<Self> {
        // transformers' XLMRobertaConfig default.
        let padding_idx = config.opt_usize("pad_token_id")?.unwrap_or(1);
        let rows = config.opt_usize("max_position_embeddings")?.unwrap_or(512);
        if rows <= padding_idx + 1 {
            return Err(Error::config(
                config.file,
                format!(
                    "`max_position_embeddings` is {rows}: no position is left for tokens after the {} rows up to padding_idx (`pad_token_id` {padding_idx}); expected more than {}",
                    padding_idx + 1,
                    padding_idx + 1
                ),
            ));
        }
        Ok(XlmRoberta {
            bert: Bert::load_with_prefixes(config, store, PREFIXES)?,
            // rows <= 2^28 (a config integer), so the index fits.
            padding_idx: padding_idx as u32,
        })
    }

    pub(crate) fn hidden_size(&self) -> usize {
        self.bert.hidden_size()
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.bert.vocab_size()
    }

    /// The longest sequence: the position table's rows less those up to `padding_idx`.
    pub(crate) fn max_positions(&self) -> usize {
        self.bert
            .max_positions()
            .saturating_sub(self.padding_idx as usize + 1)
    }

    pub(crate) fn max_positions_note(&self) -> String {
        format!(
            "max_position_embeddings {} less the {} rows up to padding_idx: {} tokens",
            self.bert.max_positions(),
            self.padding_idx as usize + 1,
            self.max_positions()
        )
    }

    pub(crate) fn widest_row(&self) -> usize {
        self.bert.widest_row()
    }

    pub(crate) fn forward(&self, batch: &Packed) -> candle_core::Result<Tensor> {
        let pad = self.padding_idx;
        let mut positions = Vec::with_capacity(batch.ids.len());
        for span in &batch.spans {
            let mut next = pad;
            for &id in &batch.ids[span.start..span.start + span.len] {
                if id == pad {
                    positions.push(pad);
                } else {
                    next += 1;
                    positions.push(next);
                }
            }
        }
        let positions = Tensor::from_vec(positions, batch.ids.len(), batch.positions.device())?;
        self.bert.forward_at(batch, &positions)
    }
}
