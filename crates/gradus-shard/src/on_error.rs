//! What a stage does with input it cannot use, one setting for every reader of raw
//! files (the clean stage, the examples encoder, `gradus import`). Each stage names its
//! own default: web text is noisy, so cleaning skips and counts (as datatrove does); a
//! labelled task with a bad row is a broken task, so encoding examples stops.

use serde::{Deserialize, Serialize};

/// What to do with a record (or file) that cannot be read or used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Leave it out, count it by kind in the stage's report or statistics, go on.
    Skip,
    /// Stop with the file and line.
    Fail,
}
