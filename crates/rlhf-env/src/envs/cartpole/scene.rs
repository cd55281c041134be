//! CartPole drawn as Gymnasium's `rgb_array` renderer draws it.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{CartPole, CartPoleConfig, X_THRESHOLD};
use crate::render::Scene;

const CART_COLOR: RGBColor = RGBColor(0, 0, 0);
const POLE_COLOR: RGBColor = RGBColor(202, 152, 101);
const AXLE_COLOR: RGBColor = RGBColor(129, 132, 203);

/// One frame of CartPole: the state to draw.
///
/// Geometry is Gymnasium's on a 600×400 screen (cart 50×30 with its centre
/// 100 px above the bottom, pole 10 px wide and `2 · length` world units long,
/// the track spanning ±2 · 2.4 m), scaled uniformly to the drawing area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CartPoleScene {
    /// `[x, x_dot, theta, theta_dot]`.
    pub state: [f64; 4],
    /// Half the pole's length (m), Gymnasium's `length`.
    pub length: f64,
}

impl CartPoleScene {
    /// A frame of `state` with CartPole-v1's pole.
    pub fn v1(state: [f64; 4]) -> Self {
        Self { state, length: CartPoleConfig::default().length }
    }
}

impl CartPole {
    /// The current state as a drawable frame.
    pub fn scene(&self) -> CartPoleScene {
        CartPoleScene { state: self.state, length: self.config.length }
    }
}

impl Scene for CartPoleScene {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (width, height) = area.dim_in_pixel();
        let k = (f64::from(width) / 600.0).min(f64::from(height) / 400.0);
        // World (Gymnasium's y-up screen units) to pixels, y flipped.
        let to_px = |x: f64, y: f64| ((x * k).round() as i32, (f64::from(height) - y * k).round() as i32);

        let scale = 600.0 / (2.0 * X_THRESHOLD);
        let pole_width = 10.0;
        let pole_len = scale * (2.0 * self.length);
        let (cart_width, cart_height) = (50.0, 30.0);
        let axle_offset = cart_height / 4.0;
        let cart_x = self.state[0] * scale + 300.0;
        let cart_y = 100.0;

        area.fill(&WHITE)?;
        let cart = [(-1.0, -1.0), (-1.0, 1.0), (1.0, 1.0), (1.0, -1.0)]
            .map(|(sx, sy)| to_px(cart_x + sx * cart_width / 2.0, cart_y + sy * cart_height / 2.0));
        area.draw(&Polygon::new(cart.to_vec(), CART_COLOR.filled()))?;

        // The pole rectangle rotated by -theta about the axle (pygame's rotate_rad).
        let (sin, cos) = (-self.state[2]).sin_cos();
        let (l, r, t, b) = (-pole_width / 2.0, pole_width / 2.0, pole_len - pole_width / 2.0, -pole_width / 2.0);
        let pole = [(l, b), (l, t), (r, t), (r, b)]
            .map(|(px, py)| to_px(px * cos - py * sin + cart_x, px * sin + py * cos + cart_y + axle_offset));
        area.draw(&Polygon::new(pole.to_vec(), POLE_COLOR.filled()))?;

        let axle_radius = ((pole_width / 2.0) * k).round().max(1.0) as i32;
        area.draw(&Circle::new(to_px(cart_x, cart_y + axle_offset), axle_radius, AXLE_COLOR.filled()))?;
        area.draw(&PathElement::new(vec![to_px(0.0, cart_y), to_px(600.0, cart_y)], CART_COLOR))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{DEFAULT_SIZE, rgb_frame};

    fn pixel(frame: &[u8], (x, y): (usize, usize)) -> [u8; 3] {
        let i = 3 * (y * DEFAULT_SIZE.0 as usize + x);
        [frame[i], frame[i + 1], frame[i + 2]]
    }

    #[test]
    fn cart_and_pole_are_where_gymnasium_draws_them() {
        let upright = rgb_frame(&CartPoleScene::v1([0.0; 4]), DEFAULT_SIZE).unwrap();
        // Cart centre: x = 300 px, 100 px above the bottom of a 400 px screen.
        assert_eq!(pixel(&upright, (300, 310)), [0, 0, 0]);
        // Pole: straight up from the axle, 125 px long.
        assert_eq!(pixel(&upright, (300, 200)), [202, 152, 101]);
        assert_eq!(pixel(&upright, (300, 100)), [255, 255, 255]);
        // One metre to the right is 125 px.
        let moved = rgb_frame(&CartPoleScene::v1([1.0, 0.0, 0.0, 0.0]), DEFAULT_SIZE).unwrap();
        assert_eq!(pixel(&moved, (425, 310)), [0, 0, 0]);
        assert_eq!(pixel(&moved, (300, 310)), [255, 255, 255]);
        // Tilted right by 30°, the pole's tip region moves right of the axle.
        let tilted = rgb_frame(&CartPoleScene::v1([0.0, 0.0, std::f64::consts::FRAC_PI_6, 0.0]), DEFAULT_SIZE).unwrap();
        // 80 px along the pole: (300 + 80 sin 30°, 292.5 - 80 cos 30°) = (340, 223).
        assert_eq!(pixel(&tilted, (340, 223)), [202, 152, 101]);
        assert_eq!(pixel(&tilted, (300, 200)), [255, 255, 255]);
    }
}
