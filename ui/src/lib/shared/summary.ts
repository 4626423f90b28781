// How a task's result reads, for both fronts: the desktop window (whose rows
// come typed from Rust) and the web dashboard (whose rows come from the hub).
import type { Summary, SummaryCitation, SummaryPlace } from '../generated/contract';

/** A result's summary, when a limb's agent wrote one (an echo limb writes plain text). */
export function parseSummary(text: string): Summary | null {
  try {
    const value = JSON.parse(text);
    return value && typeof value.answer === 'string' && Array.isArray(value.citations) ? (value as Summary) : null;
  } catch {
    return null;
  }
}

export type Readable = { answer: string; sources: string; tools: string; truncated: boolean };

/** A result as a person reads it: the agent's answer, its sources, its tool calls; or the text as it came. */
export function readable(summary: Summary | null, raw: string): Readable {
  if (!summary) return { answer: raw, sources: '', tools: '', truncated: false };
  const place = (p: SummaryPlace) => `${p.file}${p.page ? ` p.${p.page}` : ''} §${p.chunk}`;
  const lines = (c: SummaryCitation) => (c.lines ? ` lines ${c.lines[0]}–${c.lines[1]}` : '');
  const sources = summary.citations
    .map((c) => `[${c.n}] ${place(c)}${lines(c)}${c.also?.length ? ` (also ${c.also.map(place).join(', ')})` : ''}`)
    .join(', ');
  const calls = summary.tool_calls;
  const tools = calls ? `${calls} run_python call${calls > 1 ? 's' : ''}` : '';
  return { answer: summary.answer, sources, tools, truncated: summary.truncated ?? false };
}
