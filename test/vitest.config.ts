import { defineConfig } from "vitest/config"

const root = new URL("..", import.meta.url).pathname
const common = { root, testTimeout: 60_000, hookTimeout: 60_000, pool: "forks" as const }

/**
 * Two projects: the whole suite on ioredis 5, and the library's suites again on ioredis 6
 * (installed as the `ioredis6` alias), so both supported majors are tested in every run.
 */
export default defineConfig({
  test: {
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      {
        test: { ...common, name: "ioredis5", include: ["test/**/*.test.ts"], env: { IOREDIS_MAJOR: "5" } }
      },
      {
        resolve: { alias: { ioredis: "ioredis6" } },
        test: {
          ...common,
          name: "ioredis6",
          include: ["test/**/*.test.ts"],
          // The worker-process fault suites run once, on ioredis 5: they take most of the suite's time.
          exclude: [
            "test/harness.test.ts",
            "test/timing.test.ts",
            "test/faults/nemesis.test.ts",
            "test/faults/controls.test.ts"
          ],
          env: { IOREDIS_MAJOR: "6" }
        }
      }
    ]
  }
})
