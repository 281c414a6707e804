import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // One service, shared: files run one after another (the machine has two cores), tests inside
    // a file in order. Each test makes its own users, so none depends on another.
    fileParallelism: false,
    testTimeout: 30_000,
  },
})
