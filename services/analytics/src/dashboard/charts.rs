//! Bar charts drawn by plotters into SVG: one or more series over named
//! categories (a grouped bar chart), labelled axes and a legend.

use plotters::{coord::ranged1d::SegmentValue, prelude::*, style::RGBColor};

/// Chart size in pixels.
const SIZE: (u32, u32) = (640, 300);

/// One series of bars: its name in the legend, colour and a value per category.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

/// The palette of the dashboard's series, in order.
pub const PALETTE: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// What the y axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Whole numbers from 0, a label on whole numbers only.
    Count,
    /// A share from 0 to 1, shown in per cent.
    Share,
}

impl Scale {
    /// The top of the axis for values up to `highest`, and how many labels it gets.
    fn range(self, highest: f64) -> (f64, usize) {
        match self {
            Scale::Share => (1.0, 6),
            Scale::Count => {
                let top = (highest * 1.1).ceil().max(1.0);
                // A label per whole number up to 10, else about 10 labels.
                (top, (top as usize).min(10) + 1)
            }
        }
    }

    fn label(self, v: f64) -> String {
        match self {
            Scale::Count => format!("{v:.0}"),
            Scale::Share => format!("{:.0} %", v * 100.0),
        }
    }
}

/// A bar chart of `series` over `categories` (an empty label leaves that
/// category unlabelled), the y axis described by `y_desc` on `scale`; an
/// SVG document.
pub fn bars(
    title: &str,
    categories: &[String],
    series: &[Series],
    y_desc: &str,
    scale: Scale,
) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, title, categories, series, y_desc, scale).map_err(|e| e.to_string())?;
    Ok(svg)
}

fn draw(
    svg: &mut String,
    title: &str,
    categories: &[String],
    series: &[Series],
    y_desc: &str,
    scale: Scale,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    // Each category has a slot per series and an empty one between groups.
    let per_group = series.len() + 1;
    let slots = (categories.len() * per_group).max(1) as i32;
    let highest = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let (top, y_labels) = scale.range(highest);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d((0..slots).into_segmented(), 0f64..top)?;
    let label_slot = series.len().saturating_sub(1) / 2;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(slot) if *slot >= 0 && (*slot as usize) % per_group == label_slot => {
            categories
                .get(*slot as usize / per_group)
                .cloned()
                .unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots as usize)
        .x_label_formatter(&label)
        .y_desc(y_desc)
        .y_labels(y_labels)
        .y_label_formatter(&|v| scale.label(*v))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = s.color;
        chart
            .draw_series(s.values.iter().enumerate().map(|(c, v)| {
                let slot = (c * per_group + i) as i32;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(slot), 0.0),
                        (SegmentValue::Exact(slot + 1), *v),
                    ],
                    color.filled(),
                )
            }))?
            .label(s.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_a_bar_per_value_and_the_labels() {
        let categories = vec!["mobile".to_owned(), "web".to_owned()];
        let series = [
            Series {
                name: "placed",
                color: PALETTE[0],
                values: vec![4.0, 2.0],
            },
            Series {
                name: "shipped",
                color: PALETTE[1],
                values: vec![3.0, 0.0],
            },
        ];
        let svg = bars("Funnel", &categories, &series, "orders", Scale::Count).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["Funnel", "mobile", "web", "placed", "shipped", "orders"] {
            assert!(
                svg.contains(&format!(">{text}<")) || svg.contains(text),
                "{text} missing"
            );
        }
        let bars_drawn = |color: RGBColor| {
            let fill = format!("fill=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2);
            svg.matches(&fill).count()
        };
        // Two bars and a legend mark per series.
        assert_eq!(bars_drawn(PALETTE[0]), 3, "{svg}");
        assert_eq!(bars_drawn(PALETTE[1]), 3, "{svg}");
    }

    #[test]
    fn counts_are_labelled_on_whole_numbers_and_shares_up_to_100_per_cent() {
        assert_eq!(Scale::Count.range(0.0), (1.0, 2));
        assert_eq!(Scale::Count.range(4.0), (5.0, 6));
        assert_eq!(Scale::Count.range(300.0), (330.0, 11));
        assert_eq!(Scale::Share.range(0.4), (1.0, 6));
        assert_eq!(Scale::Share.label(0.6), "60 %");
        assert_eq!(Scale::Count.label(3.0), "3");
    }

    #[test]
    fn a_chart_of_nothing_still_draws_its_axes() {
        let svg = bars("Empty", &[], &[], "orders", Scale::Count).unwrap();
        assert!(svg.contains("Empty"), "{svg}");
    }
}
