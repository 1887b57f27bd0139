//! Processes.
use super::prng::Rng;
use super::world::World;
pub async fn driver(_w: &World, _rng: Rng) -> trio::Result<()> {
    Ok(())
}
