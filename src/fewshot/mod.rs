//! The few-shot setting: class-disjoint splits, N-way K-shot episodes, ProtoNet and ridge-regression
//! meta-learners, and SLA's joint labels carried over to episodes (every (class, transformation)
//! pair of an episode is its own way).

pub mod batch;
pub mod classes;
pub mod config;
pub mod episode;
pub mod evaluate;
pub mod objective;
pub mod protonet;
pub mod results;
pub mod ridge;
pub mod setup;
pub mod trainer;

pub use config::FewShotConfig;
pub use objective::Method;
