//! Errors of multi-task training, each naming the task, file or setting at fault.

use gradus_finetune::FinetuneError;

#[derive(Debug, thiserror::Error)]
pub enum MultitaskError {
    #[error(transparent)]
    Finetune(#[from] FinetuneError),
    #[error(transparent)]
    Model(#[from] gradus_model::ModelError),
    #[error("tensor maths: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Config(String),
}

impl From<MultitaskError> for gradus_train::TrainError {
    fn from(e: MultitaskError) -> Self {
        match e {
            MultitaskError::Finetune(f) => f.into(),
            MultitaskError::Model(m) => Self::Model(m),
            MultitaskError::Candle(c) => Self::Candle(c),
            MultitaskError::Config(c) => Self::Config(c),
        }
    }
}

pub type Result<T> = std::result::Result<T, MultitaskError>;
