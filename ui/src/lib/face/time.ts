// Durations and moments as the dashboard writes them.

/** "12 s", "4 min", "3 h", "2 d". */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** Tasks finished in each of the last `minutes` minutes, oldest first. */
export function perMinute(finishedMs: Iterable<number>, now: number, minutes: number): number[] {
  return perSpan([...finishedMs].map((at) => [at, 1]), now, 60_000, minutes);
}

/** The sums of each event's weight per span of `spanMs` over the last `spans` spans, the latest last. */
export function perSpan(events: Iterable<[number, number]>, now: number, spanMs: number, spans: number): number[] {
  const sums = new Array<number>(spans).fill(0);
  const start = Math.floor(now / spanMs) - spans + 1;
  for (const [at, weight] of events) {
    const bucket = Math.floor(at / spanMs) - start;
    if (bucket >= 0 && bucket < spans) sums[bucket] += weight;
  }
  return sums;
}

/** How long ago a hub timestamp was, as `age` writes it. */
export function since(at: { toDate(): Date }, now: number): string {
  return age(now - at.toDate().getTime());
}
