//! The HTML report: one self-contained page (inline CSS, an inline SVG chart, no scripts, no
//! fetches) for the person who signs the payouts off. The summary and the tie-out come first,
//! then the chart of amounts by state, the exceptions grouped by reason with what to do, the
//! batches, and the exceptions one by one (the first [`MAX_EXCEPTION_ROWS`]; the CSV has all).

use std::fmt::Write as _;
use std::io::Write;

use super::summary::{StateLine, Summary, Totals};
use super::{action, dollars};
use crate::ledger::{ReportLedger, text};
use crate::payout::PayoutState;

/// Exceptions listed one by one; beyond this the page points to the CSV.
pub const MAX_EXCEPTION_ROWS: usize = 500;

const STYLE: &str = r#"
:root { --ink:#1d2939; --muted:#667085; --line:#e4e7ec; --bg:#f9fafb; --bad:#b42318; --good:#067647; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 10px; }
.meta { color: var(--muted); margin: 0 0 20px; }
.cards { display: grid; grid-template-columns: repeat(5, 1fr); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 650; margin-top: 4px; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 13px; }
.card.alert { border-color: #fda29b; background: #fef3f2; }
.card.alert .value { color: var(--bad); }
.tieout { margin: 16px 0 0; padding: 12px 16px; border-radius: 10px; font-weight: 600; }
.tieout.ok { background: #ecfdf3; border: 1px solid #abefc6; color: var(--good); }
.tieout.bad { background: #fef3f2; border: 1px solid #fda29b; color: var(--bad); }
.tieout span { font-weight: 400; color: var(--ink); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line);
  border-radius: 10px; overflow: hidden; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f2f4f7; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: #475467; }
tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.action { max-width: 360px; }
td.nowrap { white-space: nowrap; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  color: #fff; white-space: nowrap; }
.zero { color: #98a2b3; }
.note { color: var(--muted); margin: 8px 0 0; }
.none { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; color: var(--good); font-weight: 600; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.chart text { font: 13px -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: #1d2939; }
.chart text.amount { font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, "SFMono-Regular", Menlo, monospace; }
@media print { body { background: #fff; } main { padding: 0; } .card, table, .chart { break-inside: avoid; } }
"#;

/// The colour of each state, in the chart and the state chips.
pub fn colour(state: PayoutState) -> &'static str {
    match state {
        PayoutState::Rejected => "#b42318",
        PayoutState::Failed => "#d92d20",
        PayoutState::Returned => "#e04f16",
        PayoutState::NeedsReview => "#dc6803",
        PayoutState::Pending => "#98a2b3",
        PayoutState::Submitting => "#7a5af8",
        PayoutState::Submitted => "#2e90fa",
        PayoutState::Processed => "#079455",
        PayoutState::Cancelled => "#667085",
    }
}

/// What each state means, in a finance person's words.
pub fn meaning(state: PayoutState) -> &'static str {
    match state {
        PayoutState::Rejected => "Dwolla refused the request; nothing was paid",
        PayoutState::Failed => "The bank transfer failed; nothing was paid",
        PayoutState::Returned => "Paid, then returned by the payee's bank",
        PayoutState::NeedsReview => "Outcome unknown; a person must check at Dwolla",
        PayoutState::Pending => "Not sent yet",
        PayoutState::Submitting => "Sent; waiting to confirm Dwolla received it",
        PayoutState::Submitted => "Accepted by Dwolla; not settled yet",
        PayoutState::Processed => "Paid",
        PayoutState::Cancelled => "Withdrawn before it was sent",
    }
}

/// Writes the page. The exception rows are streamed from the ledger.
pub fn write_html(
    ledger: &impl ReportLedger,
    summary: &Summary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut page = String::with_capacity(64 * 1024);
    head(&mut page, summary);
    cards(&mut page, &summary.overall, summary.batches.len());
    tie_out(&mut page, summary);
    page.push_str("<h2>Amounts by state</h2>\n");
    chart(&mut page, &summary.overall.states);
    reasons(&mut page, summary);
    states_table(&mut page, &summary.overall);
    batches_table(&mut page, summary);
    cancellations(&mut page, summary);
    out.write_all(page.as_bytes())?;
    page.clear();
    exception_rows(ledger, summary, out)?;
    out.write_all(b"<p class=\"note\">Amounts are US dollars. Every payout, with its identifiers and timestamps, is in the CSV report of the same ledger.</p>\n</main>\n</body>\n</html>\n")?;
    Ok(())
}

fn head(page: &mut String, summary: &Summary) {
    let scope = match (&summary.selection.batch, &summary.selection.since) {
        (Some(batch), _) => format!("Batch {batch}"),
        (None, Some(since)) => format!("Batches received since {}", when(since)),
        (None, None) => "All batches".to_string(),
    };
    let as_of = summary
        .ledger_as_of
        .as_deref()
        .map(when)
        .unwrap_or_else(|| "an empty ledger".to_string());
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Payout report: {scope}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1>Payout report</h1>\n<p class=\"meta\">{scope} &middot; ledger as of {as_of}</p>\n",
        scope = escape(&scope),
        as_of = escape(&as_of),
    );
}

fn cards(page: &mut String, totals: &Totals, n_batches: usize) {
    let state = |wanted: PayoutState| {
        totals
            .states
            .iter()
            .find(|line| line.state == wanted)
            .map(|line| (line.count, line.total_cents))
            .unwrap_or_default()
    };
    let in_progress = [
        PayoutState::Pending,
        PayoutState::Submitting,
        PayoutState::Submitted,
    ]
    .into_iter()
    .map(state)
    .fold((0, 0), |(n, c), (count, cents)| (n + count, c + cents));
    let (n_processed, processed) = state(PayoutState::Processed);
    let (n_cancelled, cancelled) = state(PayoutState::Cancelled);
    page.push_str("<section class=\"cards\">\n");
    let card = |page: &mut String, class: &str, label: &str, cents: i64, sub: String| {
        let _ = writeln!(
            page,
            "<div class=\"card{class}\"><div class=\"label\">{label}</div><div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
            dollars(cents),
            escape(&sub)
        );
    };
    card(
        page,
        "",
        "Input total",
        totals.tie_out.input_total_cents,
        format!(
            "{} in {}",
            plural(totals.tie_out.input_payouts, "payout"),
            plural(n_batches as u64, "file")
        ),
    );
    card(page, "", "Paid", processed, plural(n_processed, "payout"));
    card(
        page,
        "",
        "In progress",
        in_progress.1,
        format!("{} pending or in flight", plural(in_progress.0, "payout")),
    );
    let alert = if totals.needing_attention > 0 {
        " alert"
    } else {
        ""
    };
    card(
        page,
        alert,
        "Needs attention",
        totals.needing_attention_total_cents,
        plural(totals.needing_attention, "payout"),
    );
    card(
        page,
        "",
        "Cancelled",
        cancelled,
        plural(n_cancelled, "payout"),
    );
    page.push_str("</section>\n");
}

fn tie_out(page: &mut String, summary: &Summary) {
    let tie = &summary.overall.tie_out;
    let broken: Vec<i64> = summary
        .batches
        .iter()
        .filter(|batch| !batch.totals.tie_out.ties_out)
        .map(|batch| batch.batch_id)
        .collect();
    if summary.ties_out() {
        let _ = writeln!(
            page,
            "<p class=\"tieout ok\">&#10003; Ties out to the cent. <span>Input files {} ({}) = sum over all states {} ({}).</span></p>",
            dollars(tie.input_total_cents),
            plural(tie.input_payouts, "payout"),
            dollars(tie.sum_over_states_cents),
            plural(tie.payouts_over_states, "payout"),
        );
        if tie.cancelled_payouts > 0 {
            let _ = writeln!(
                page,
                "<p class=\"note\">Of the input, {} ({}) were cancelled before sending and are not paid; {} is paid or still to be paid.</p>",
                dollars(tie.cancelled_total_cents),
                plural(tie.cancelled_payouts, "payout"),
                dollars(tie.payable_total_cents),
            );
        }
    } else {
        let batches = broken
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            page,
            "<p class=\"tieout bad\">&#10007; Does NOT tie out. <span>Input files {} ({}), sum over all states {} ({}): difference {}. Batches that do not tie out: {}. Do not sign off; report this to whoever runs payrun.</span></p>",
            dollars(tie.input_total_cents),
            plural(tie.input_payouts, "payout"),
            dollars(tie.sum_over_states_cents),
            plural(tie.payouts_over_states, "payout"),
            dollars(tie.difference_cents),
            if batches.is_empty() {
                "none singly".to_string()
            } else {
                batches
            },
        );
    }
}

/// The batch's sent date, marked when it was late (or "held" / "not yet").
fn sent_cell(batch: &super::summary::BatchSummary) -> String {
    match &batch.sent_at {
        Some(sent) if batch.late => format!(
            "{} <strong style=\"color:#b42318\">late</strong>",
            escape(&when(sent))
        ),
        Some(sent) => escape(&when(sent)),
        None if batch.held => "held".to_string(),
        None if batch.late => "not yet (late)".to_string(),
        None => "not yet".to_string(),
    }
}

/// Cancelled payouts, per batch and reason.
fn cancellations(page: &mut String, summary: &Summary) {
    let rows: Vec<_> = summary
        .batches
        .iter()
        .flat_map(|batch| batch.cancellations.iter().map(move |c| (batch.batch_id, c)))
        .collect();
    if rows.is_empty() {
        return;
    }
    page.push_str("<h2>Cancelled before sending</h2>\n<table>\n<tr><th class=\"num\">Batch</th><th>Reason</th><th class=\"num\">Payouts</th><th class=\"num\">Amount</th></tr>\n");
    for (batch_id, cancellation) in rows {
        let _ = writeln!(
            page,
            "<tr><td class=\"num\">{batch_id}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&cancellation.reason),
            cancellation.count,
            dollars(cancellation.total_cents),
        );
    }
    page.push_str("</table>\n");
}

/// A horizontal bar per state, lengths proportional to amounts.
fn chart(page: &mut String, states: &[StateLine]) {
    const WIDTH: i64 = 1100;
    const LABEL: i64 = 130;
    const BAR_MAX: i64 = 700;
    const ROW: i64 = 30;
    let max = states
        .iter()
        .map(|s| s.total_cents)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = ROW * states.len() as i64 + 10;
    let _ = writeln!(
        page,
        "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" aria-label=\"Amounts by state\">"
    );
    for (index, line) in states.iter().enumerate() {
        let y = 5 + ROW * index as i64;
        let length = if line.total_cents > 0 {
            // Integer arithmetic: a visible sliver for any non-zero amount.
            (i128::from(line.total_cents) * i128::from(BAR_MAX) / i128::from(max)).max(3) as i64
        } else {
            0
        };
        let weight = if line.needs_attention && line.count > 0 {
            " font-weight=\"700\""
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\"{weight}>{name}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{length}\" height=\"{h}\" rx=\"3\" fill=\"{fill}\"/>\
             <text class=\"amount\" x=\"{vx}\" y=\"{ty}\"{zero}>{amount} &#183; {count}</text>",
            x = LABEL - 10,
            ty = y + 16,
            name = line.state.as_str().replace('_', " "),
            h = ROW - 8,
            fill = colour(line.state),
            vx = LABEL + length + 8,
            zero = if line.count == 0 {
                " fill=\"#98a2b3\""
            } else {
                ""
            },
            amount = dollars(line.total_cents),
            count = plural(line.count, "payout"),
        );
    }
    page.push_str("</svg></div>\n");
}

fn reasons(page: &mut String, summary: &Summary) {
    page.push_str("<h2>Needs attention, by reason</h2>\n");
    if summary.exceptions.is_empty() {
        page.push_str("<p class=\"none\">&#10003; No payout needs attention.</p>\n");
        return;
    }
    page.push_str("<table>\n<tr><th>State</th><th>Code</th><th>Reason</th><th class=\"num\">Payouts</th><th class=\"num\">Amount</th><th>What to do</th></tr>\n");
    for reason in &summary.exceptions {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"action\">{}</td></tr>",
            chip(reason.state),
            escape(reason.failure_code.as_deref().unwrap_or("")),
            escape(reason.description.as_deref().unwrap_or("")),
            reason.count,
            dollars(reason.total_cents),
            escape(&reason.action),
        );
    }
    page.push_str("</table>\n");
}

fn states_table(page: &mut String, totals: &Totals) {
    page.push_str("<h2>All payouts by state</h2>\n<table>\n<tr><th>State</th><th>Meaning</th><th class=\"num\">Payouts</th><th class=\"num\">Amount</th><th class=\"num\">Share of input</th></tr>\n");
    let input = totals.tie_out.input_total_cents;
    for line in &totals.states {
        let share = if input > 0 {
            // Basis points, rounded half up, in integers: 1234 is 12.34 %.
            let bp = (i128::from(line.total_cents) * 10_000 * 2 + i128::from(input))
                / (2 * i128::from(input));
            format!("{}.{:02} %", bp / 100, bp % 100)
        } else {
            "&#8211;".to_string()
        };
        let class = if line.count == 0 { " zero" } else { "" };
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td class=\"num{class}\">{}</td><td class=\"num{class}\">{}</td><td class=\"num{class}\">{share}</td></tr>",
            chip(line.state),
            meaning(line.state),
            line.count,
            dollars(line.total_cents),
        );
    }
    let _ = writeln!(
        page,
        "<tr><th>Total</th><th></th><th class=\"num\">{}</th><th class=\"num\">{}</th><th class=\"num\"></th></tr>\n</table>",
        totals.payouts,
        dollars(totals.total_cents),
    );
}

fn batches_table(page: &mut String, summary: &Summary) {
    page.push_str("<h2>Batches</h2>\n");
    if summary.batches.is_empty() {
        page.push_str("<p class=\"note\">No batch matches this selection.</p>\n");
        return;
    }
    page.push_str("<table>\n<tr><th>Batch</th><th>File</th><th>Received</th><th>Pay date</th><th>Sent</th><th>Status</th><th class=\"num\">Payouts</th><th class=\"num\">Input total</th><th class=\"num\">Paid</th><th class=\"num\">Needs attention</th><th>Ties out</th></tr>\n");
    for batch in &summary.batches {
        let totals = &batch.totals;
        let paid = totals
            .states
            .iter()
            .find(|line| line.state == PayoutState::Processed)
            .map_or(0, |line| line.total_cents);
        let ties = if totals.tie_out.ties_out {
            "<span style=\"color:#067647\">&#10003; yes</span>".to_string()
        } else {
            format!(
                "<strong style=\"color:#b42318\">&#10007; off by {}</strong>",
                dollars(totals.tie_out.difference_cents)
            )
        };
        let rejected_rows = if batch.rejected_rows > 0 {
            format!(
                "<br><span class=\"note\">{} refused at ingest, not included</span>",
                plural(batch.rejected_rows, "row")
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            page,
            "<tr><td class=\"num\">{}</td><td>{}{rejected_rows}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{ties}</td></tr>",
            batch.batch_id,
            escape(&batch.file),
            escape(&when(&batch.received_at)),
            escape(batch.pay_date.as_deref().unwrap_or("none")),
            sent_cell(batch),
            escape(&batch.status.replace('_', " ")),
            totals.tie_out.input_payouts,
            dollars(totals.tie_out.input_total_cents),
            dollars(paid),
            if totals.needing_attention > 0 {
                format!(
                    "<strong style=\"color:#b42318\">{} ({})</strong>",
                    dollars(totals.needing_attention_total_cents),
                    totals.needing_attention
                )
            } else {
                "<span class=\"zero\">none</span>".to_string()
            },
        );
    }
    page.push_str("</table>\n");
}

fn exception_rows(
    ledger: &impl ReportLedger,
    summary: &Summary,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let total = summary.overall.needing_attention;
    let mut html = String::from("<h2>Payouts needing attention</h2>\n");
    if total == 0 {
        html.push_str("<p class=\"none\">&#10003; None.</p>\n");
        out.write_all(html.as_bytes())?;
        return Ok(());
    }
    html.push_str("<table>\n<tr><th class=\"num\">Batch</th><th class=\"num\">Line</th><th>Reference</th><th>Payee</th><th class=\"num\">Amount</th><th>State</th><th>Reason</th><th>What to do</th></tr>\n");
    out.write_all(html.as_bytes())?;
    let mut written = 0usize;
    let mut row = String::new();
    'batches: for batch in &summary.batches {
        if batch.totals.needing_attention == 0 {
            continue;
        }
        ledger.for_each_batch_payout(batch.batch_id, true, |payout| -> anyhow::Result<()> {
            if written >= MAX_EXCEPTION_ROWS {
                return Err(anyhow::Error::new(Enough));
            }
            written += 1;
            row.clear();
            let code = payout.failure_code.map(text);
            let path = payout.failure_path.map(text);
            let reason = match (code.as_deref(), payout.failure_description.map(text)) {
                (Some(code), Some(description)) => format!("{code}: {description}"),
                (Some(code), None) => code.to_string(),
                (None, Some(description)) => description.into_owned(),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                row,
                "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"action\">{}</td></tr>",
                payout.batch_id,
                payout.line,
                escape(&text(payout.reference)),
                escape(&payout.name.map(text).unwrap_or_default()),
                dollars(payout.amount_cents),
                chip(payout.state),
                escape(&reason),
                escape(&action(payout.state, code.as_deref(), path.as_deref(), &batch.status)),
            );
            out.write_all(row.as_bytes())?;
            Ok(())
        })
        .or_else(|err| if err.is::<Enough>() { Ok(()) } else { Err(err) })?;
        if written >= MAX_EXCEPTION_ROWS {
            break 'batches;
        }
    }
    out.write_all(b"</table>\n")?;
    if total > written as u64 {
        let note = format!(
            "<p class=\"note\">Showing the first {written} of {total} payouts needing attention; the CSV report lists them all.</p>\n"
        );
        out.write_all(note.as_bytes())?;
    }
    Ok(())
}

/// Stops the exception stream once the page has enough rows.
#[derive(Debug, thiserror::Error)]
#[error("enough rows")]
struct Enough;

fn chip(state: PayoutState) -> String {
    format!(
        "<span class=\"chip\" style=\"background:{}\">{}</span>",
        colour(state),
        state.as_str().replace('_', " ")
    )
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// `2026-11-20T23:24:21.123Z` as `2026-11-20 23:24 UTC`; other text unchanged.
fn when(timestamp: &str) -> String {
    match (timestamp.get(..10), timestamp.get(11..16)) {
        (Some(day), Some(time)) if timestamp.ends_with('Z') => format!("{day} {time} UTC"),
        _ => timestamp.to_string(),
    }
}

/// Text made safe for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_payout_data_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn ledger_timestamps_read_as_minutes_in_utc() {
        assert_eq!(when("2026-11-20T23:24:21.123Z"), "2026-11-20 23:24 UTC");
        assert_eq!(when("yesterday"), "yesterday");
    }
}
