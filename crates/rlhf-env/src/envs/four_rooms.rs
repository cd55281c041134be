//! Four rooms: navigate a walled grid to a goal cell (after Sutton, Precup &
//! Singh 1999), as a goal-conditioned task with the sparse reward of the
//! hindsight paper.
//!
//! The grid is `size × size` cells. A wall runs down the middle column and
//! another along the middle row, splitting it into four rooms; each of the
//! four wall segments has one doorway at its middle. Start and goal are drawn
//! uniformly among the free cells, different from each other. Actions move
//! one cell up, right, down or left; a move into a wall or off the grid
//! leaves the agent where it is. The reward is −1 per step and 0 on the step
//! that reaches the goal, which terminates; episodes are truncated after
//! `max_steps` (by default `4 × size`).
//!
//! Positions are observed as `(row, column) / (size − 1)`, in `[0, 1]`, and
//! the achieved goal is the position, so relabeling a goal means "suppose
//! the agent had been sent to the cell it reached".

use crate::env::{Env, Snapshot, Step};
use crate::error::EnvError;
use crate::goal::{GoalEnv, GoalEpisode, GoalInfo, GoalObs, GoalSpace, SparseGoalReward};
use crate::rng::uniform_index;
use crate::spaces::{BoxSpace, Discrete};

/// Moves of the actions 0..4: up, right, down, left, as (row, column) deltas.
const MOVES: [(isize, isize); 4] = [(-1, 0), (0, 1), (1, 0), (0, -1)];

/// The four-rooms navigation task.
#[derive(Debug, Clone)]
pub struct FourRooms {
    id: String,
    size: usize,
    episode: GoalEpisode,
    /// `true` where a cell is wall, row-major.
    walls: Vec<bool>,
    free_cells: Vec<(usize, usize)>,
    position: (usize, usize),
    goal: (usize, usize),
    observation_space: GoalSpace<BoxSpace>,
    action_space: Discrete,
}

/// The complete state of a [`FourRooms`] (see [`Snapshot`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FourRoomsState {
    episode: GoalEpisode,
    position: (usize, usize),
    goal: (usize, usize),
}

impl FourRooms {
    /// A `size × size` grid (at least 5, so every room has a free cell).
    pub fn new(size: usize) -> Result<Self, EnvError> {
        if !(5..=1024).contains(&size) {
            return Err(EnvError::InvalidConfig { field: "size", reason: format!("must be in 5..=1024, got {size}") });
        }
        let mid = size / 2;
        // Doorways sit at the middle of each wall segment.
        let near = mid / 2;
        let far = mid + 1 + (size - mid - 1) / 2;
        let mut walls = vec![false; size * size];
        for i in 0..size {
            walls[i * size + mid] = i != near && i != far;
            walls[mid * size + i] = i != near && i != far;
        }
        let free_cells = (0..size).flat_map(|r| (0..size).map(move |c| (r, c))).filter(|&(r, c)| !walls[r * size + c]);
        let goal_space = BoxSpace::uniform(0.0, 1.0, 2)?;
        Ok(Self {
            id: format!("fourrooms:{size}"),
            size,
            episode: GoalEpisode::new(4 * size),
            free_cells: free_cells.collect(),
            walls,
            position: (0, 0),
            goal: (0, 0),
            observation_space: GoalSpace { observation: goal_space.clone(), goal: goal_space },
            action_space: Discrete::new(MOVES.len())?,
        })
    }

    /// The same grid with episodes truncated after `max_steps` steps (at least 1).
    pub fn with_max_steps(mut self, max_steps: usize) -> Result<Self, EnvError> {
        if max_steps == 0 {
            return Err(EnvError::InvalidConfig { field: "max_steps", reason: "must be at least 1".into() });
        }
        self.episode.max_steps = max_steps;
        Ok(self)
    }

    /// Side of the grid.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Steps after which an episode is truncated.
    pub fn max_steps(&self) -> usize {
        self.episode.max_steps
    }

    /// Whether `(row, column)` is a wall.
    pub fn is_wall(&self, row: usize, column: usize) -> bool {
        self.walls[row * self.size + column]
    }

    /// The agent's cell.
    pub fn position(&self) -> (usize, usize) {
        self.position
    }

    /// The goal cell.
    pub fn goal(&self) -> (usize, usize) {
        self.goal
    }

    /// The observed form of a cell.
    pub fn encode(&self, (row, column): (usize, usize)) -> Vec<f32> {
        let scale = (self.size - 1) as f32;
        vec![row as f32 / scale, column as f32 / scale]
    }

    /// The cell after action `action` from `position`.
    fn moved(&self, (row, column): (usize, usize), action: usize) -> (usize, usize) {
        let (dr, dc) = MOVES[action];
        match (row.checked_add_signed(dr), column.checked_add_signed(dc)) {
            (Some(r), Some(c)) if r < self.size && c < self.size && !self.is_wall(r, c) => (r, c),
            _ => (row, column),
        }
    }

    fn observation(&self) -> GoalObs {
        let position = self.encode(self.position);
        GoalObs { observation: position.clone(), achieved_goal: position, desired_goal: self.encode(self.goal) }
    }

    /// The grid as text: `#` wall, `A` agent, `G` goal, `.` free.
    pub fn render_ascii(&self) -> String {
        let mut text = String::with_capacity(self.size * (self.size + 1));
        for r in 0..self.size {
            for c in 0..self.size {
                text.push(match (r, c) {
                    cell if cell == self.position => 'A',
                    cell if cell == self.goal => 'G',
                    _ if self.is_wall(r, c) => '#',
                    _ => '.',
                });
            }
            text.push('\n');
        }
        text
    }
}

impl Env for FourRooms {
    type Obs = GoalObs;
    type Action = usize;
    type Info = GoalInfo;
    type ObsSpace = GoalSpace<BoxSpace>;
    type ActionSpace = Discrete;

    fn id(&self) -> &str {
        &self.id
    }

    fn observation_space(&self) -> &Self::ObsSpace {
        &self.observation_space
    }

    fn action_space(&self) -> &Discrete {
        &self.action_space
    }

    fn reset(&mut self, seed: Option<u64>) -> (GoalObs, GoalInfo) {
        self.episode.start(seed);
        let n = self.free_cells.len();
        self.position = self.free_cells[uniform_index(&mut self.episode.rng, n)];
        // Uniform over the other free cells.
        let mut goal_index = uniform_index(&mut self.episode.rng, n - 1);
        if self.free_cells[goal_index] == self.position {
            goal_index = n - 1;
        }
        self.goal = self.free_cells[goal_index];
        (self.observation(), GoalInfo::default())
    }

    fn step(&mut self, action: usize) -> Result<Step<GoalObs, GoalInfo>, EnvError> {
        self.episode.check_step(&self.id, action, &self.action_space)?;
        self.position = self.moved(self.position, action);
        Ok(self.episode.finish(self.observation()))
    }
}

impl GoalEnv for FourRooms {
    type Reward = SparseGoalReward;

    fn goal_reward(&self) -> &SparseGoalReward {
        &SparseGoalReward
    }

    fn observation_dim(&self) -> usize {
        2
    }

    fn goal_dim(&self) -> usize {
        2
    }
}

impl Snapshot for FourRooms {
    type State = FourRoomsState;

    fn snapshot(&self) -> FourRoomsState {
        FourRoomsState { episode: self.episode.clone(), position: self.position, goal: self.goal }
    }

    fn restore(&mut self, state: FourRoomsState) {
        self.episode = state.episode;
        self.position = state.position;
        self.goal = state.goal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check_env, check_goal_env};

    #[test]
    fn the_classic_size_has_four_rooms_joined_by_four_doorways() {
        let env = FourRooms::new(11).unwrap();
        let expected = "\
.....#.....
.....#.....
...........
.....#.....
.....#.....
##.#####.##
.....#.....
.....#.....
...........
.....#.....
.....#.....
";
        let mut drawn = env.render_ascii();
        // The agent and goal sit at (0, 0) before the first reset.
        drawn.replace_range(0..1, ".");
        assert_eq!(drawn, expected);
        assert_eq!(env.free_cells.len(), 121 - 21 + 4);
    }

    #[test]
    fn walls_block_moves_and_doorways_let_through() {
        let mut env = FourRooms::new(11).unwrap();
        env.reset(Some(0));
        env.position = (0, 4);
        env.goal = (10, 10);
        // Right is the wall at column 5; up is the edge.
        assert_eq!(env.step(1).unwrap().obs.observation, env.encode((0, 4)));
        assert_eq!(env.step(0).unwrap().obs.observation, env.encode((0, 4)));
        // Down twice reaches the doorway row, then right passes into the next room.
        env.step(2).unwrap();
        env.step(2).unwrap();
        env.step(1).unwrap();
        let step = env.step(1).unwrap();
        assert_eq!(env.position(), (2, 6));
        assert_eq!(step.reward, -1.0);
    }

    #[test]
    fn reaching_the_goal_terminates_with_reward_zero() {
        let mut env = FourRooms::new(7).unwrap();
        env.reset(Some(2));
        env.position = (0, 0);
        env.goal = (0, 1);
        let step = env.step(1).unwrap();
        assert!(step.terminated && step.info.is_success);
        assert_eq!(step.reward, 0.0);
        assert_eq!(step.obs.achieved_goal, step.obs.desired_goal);
    }

    #[test]
    fn start_and_goal_are_distinct_free_cells_and_cover_the_grid() {
        let mut env = FourRooms::new(5).unwrap();
        let mut seen = std::collections::HashSet::new();
        env.reset(Some(4));
        for _ in 0..2_000 {
            env.reset(None);
            assert_ne!(env.position(), env.goal());
            assert!(!env.is_wall(env.position().0, env.position().1) && !env.is_wall(env.goal().0, env.goal().1));
            seen.insert(env.goal());
        }
        assert_eq!(seen.len(), env.free_cells.len());
    }

    #[test]
    fn keeps_the_env_and_goal_env_contracts() {
        let mut env = FourRooms::new(5).unwrap();
        check_env(&mut env, 0, 20, 100).unwrap();
        let report = check_goal_env(&mut env, 3, 50).unwrap();
        assert!(report.successes > 0);
        assert!(FourRooms::new(4).is_err());
    }
}
