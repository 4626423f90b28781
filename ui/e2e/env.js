// What scripts/test hands the end-to-end tests: a missing one is a loud failure, never a skip.
export const required = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through scripts/test`);
  return value;
};
