//! Active learning: which tickets a person should label next. Strategies rank unlabelled
//! tickets from the promoted model's probabilities (`uncertainty`, `select`), spread a batch
//! over the ticket space (`diversity`), start a project with no labels (`cold-start`),
//! measure agreement between labellers (`kappa`), and `score_project` writes the ranking
//! into the project's review queue.

pub mod diversity;
pub mod kappa;
pub mod score;
pub mod select;
pub mod uncertainty;

pub use score::{ScoreError, ScoreOptions, ScoreSummary, score_project};
pub use select::{Pool, RuleConflict, SelectError, Selection, Strategy, select};
pub use uncertainty::ModelView;
