//! Generation: the decode loop and the sampler.

pub mod decode_loop;
pub mod sampler;
