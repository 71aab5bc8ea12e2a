/**
 * Planted flaws: switches that each break exactly one mechanism of the secure profile, named
 * after the real bug class. The fuzzing issue adds them; the scenario format already takes
 * the list so that recordings name the flaws they were made with.
 */
export const FLAWS = [] as const;
export type FlawName = (typeof FLAWS)[number];
