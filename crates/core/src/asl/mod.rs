//! Amazon States Language: compile a Step Functions definition into a
//! [`Machine`] and interpret it with the same runtime, store and event log
//! as saga definitions.
//!
//! - [`machine`]: the compiled form (the IR);
//! - [`parse`]: JSON → IR, reporting every problem with its path, like AWS's
//!   `InvalidDefinition`; also the resource map that binds ARNs to participants;
//! - [`data`]: InputPath, Parameters, ResultSelector, ResultPath, OutputPath;
//! - [`intrinsic`]: `States.Format`, `States.Array`, … ;
//! - [`jsonata`]: JSONata templates (`{% … %}`) and AWS's added functions,
//!   the fields of JSONata states (`QueryLanguage: JSONata`);
//! - [`choice`]: Choice rule evaluation;
//! - [`vars`]: workflow variables (`Assign`), their names and limits;
//! - [`run`]: the interpreter, a pure `(state, event) -> (state, effects)`;
//! - `decide`: the interpreter behind the execution envelope.

pub mod choice;
pub mod data;
mod decide;
pub mod intrinsic;
pub mod jsonata;
pub mod machine;
pub mod parse;
pub mod run;
pub mod vars;

pub use machine::{Machine, ResourceMap, ResourceRule};
pub use parse::{compile, is_asl};
