//! The `needs` of a pipeline drawn as a graph (GitLab's "job dependencies" view): each job
//! in the column after the deepest job it needs, one arrow per need. Laid out here and drawn
//! as SVG by the template, so it needs no script.

/// A job as the graph sees it.
pub struct DagJob<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub href: Option<String>,
    pub needs: Vec<&'a str>,
}

pub struct DagNode {
    pub x: u32,
    pub y: u32,
    pub label: String,
    pub name: String,
    pub status: String,
    pub glyph: &'static str,
    pub href: Option<String>,
}

pub struct Dag {
    pub width: u32,
    pub height: u32,
    pub nodes: Vec<DagNode>,
    /// SVG path data, one per need.
    pub edges: Vec<String>,
}

pub const NODE_WIDTH: u32 = 180;
pub const NODE_HEIGHT: u32 = 40;
const COLUMN: u32 = 230;
const ROW: u32 = 52;
const MARGIN: u32 = 8;
/// Longer names are cut (the whole name is the node's tooltip).
const LABEL_CHARS: usize = 22;

/// The graph of `jobs`, or None when no job needs another (stages tell it all).
pub fn layout(jobs: &[DagJob]) -> Option<Dag> {
    let index = |name: &str| jobs.iter().position(|job| job.name == name);
    let needs: Vec<Vec<usize>> = jobs
        .iter()
        .map(|job| job.needs.iter().filter_map(|n| index(n)).collect())
        .collect();
    if needs.iter().all(Vec::is_empty) {
        return None;
    }
    let columns = columns(&needs);
    let mut rows_used = vec![0u32; columns.iter().max().map_or(0, |c| c + 1)];
    let mut places = Vec::with_capacity(jobs.len());
    for column in &columns {
        places.push((*column as u32, rows_used[*column]));
        rows_used[*column] += 1;
    }
    let at = |(column, row): (u32, u32)| (MARGIN + column * COLUMN, MARGIN + row * ROW);
    let nodes = jobs
        .iter()
        .zip(&places)
        .map(|(job, place)| {
            let (x, y) = at(*place);
            let mut label: String = job.name.chars().take(LABEL_CHARS).collect();
            if job.name.chars().count() > LABEL_CHARS {
                label.push('…');
            }
            DagNode {
                x,
                y,
                label,
                name: job.name.to_owned(),
                status: job.status.to_owned(),
                glyph: glyph(job.status),
                href: job.href.clone(),
            }
        })
        .collect();
    let mut edges = Vec::new();
    for (to, froms) in needs.iter().enumerate() {
        for from in froms {
            let (x1, y1) = at(places[*from]);
            let (x2, y2) = at(places[to]);
            let (x1, y1) = (x1 + NODE_WIDTH, y1 + NODE_HEIGHT / 2);
            let y2 = y2 + NODE_HEIGHT / 2;
            let bend = (x2.saturating_sub(x1)) / 2;
            edges.push(format!(
                "M{x1} {y1} C{} {y1} {} {y2} {x2} {y2}",
                x1 + bend,
                x2 - bend
            ));
        }
    }
    let width = MARGIN * 2 + (rows_used.len() as u32 - 1) * COLUMN + NODE_WIDTH;
    let tallest = rows_used.iter().copied().max().unwrap_or(1);
    let height = MARGIN * 2 + (tallest - 1) * ROW + NODE_HEIGHT;
    Some(Dag {
        width,
        height,
        nodes,
        edges,
    })
}

/// Each job's column: 0 without needs, else one past the deepest job it needs. Needs only
/// point to jobs the compiler accepted, which form no cycle; a cycle would stop at depth.
fn columns(needs: &[Vec<usize>]) -> Vec<usize> {
    let mut column = vec![0usize; needs.len()];
    // Longest paths by relaxation: at most one pass per job settles an acyclic graph.
    for _ in 0..needs.len() {
        let mut moved = false;
        for (job, froms) in needs.iter().enumerate() {
            let deepest = froms.iter().map(|f| column[*f] + 1).max().unwrap_or(0);
            if deepest > column[job] {
                column[job] = deepest;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    column
}

/// The status's icon, as the stylesheet draws it beside HTML statuses.
fn glyph(status: &str) -> &'static str {
    match status {
        "success" => "✔",
        "failed" => "✖",
        "canceled" => "⊘",
        "running" => "◔",
        "manual" => "▶",
        _ => "●",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<'a>(name: &'a str, needs: &[&'a str]) -> DagJob<'a> {
        DagJob {
            name,
            status: "success",
            href: None,
            needs: needs.to_vec(),
        }
    }

    #[test]
    fn jobs_stand_one_column_past_what_they_need() {
        let jobs = [
            job("a", &[]),
            job("b", &[]),
            job("c", &["a"]),
            job("d", &["c", "b"]),
            job("e", &["a", "missing"]),
        ];
        let dag = layout(&jobs).expect("a graph");
        let places: Vec<(u32, u32)> = dag.nodes.iter().map(|n| (n.x, n.y)).collect();
        assert_eq!(places, [(8, 8), (8, 60), (238, 8), (468, 8), (238, 60)]);
        assert_eq!(dag.edges.len(), 4);
        assert_eq!(dag.edges[0], "M188 28 C213 28 213 28 238 28");
        assert_eq!(
            (dag.width, dag.height),
            (8 * 2 + 2 * 230 + 180, 8 * 2 + 52 + 40)
        );
    }

    #[test]
    fn no_needs_no_graph_and_long_names_are_cut() {
        assert!(layout(&[job("a", &[]), job("b", &[])]).is_none());
        let long = "a-very-long-job-name-that-goes-on";
        let dag = layout(&[job(long, &[]), job("b", &[long])]).expect("a graph");
        assert_eq!(dag.nodes[0].label, "a-very-long-job-name-t…");
        assert_eq!(dag.nodes[0].name, long);
    }
}
