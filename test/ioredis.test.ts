import { assert, describe, it } from "@effect/vitest"
import pkg from "ioredis/package.json" with { type: "json" }

describe("ioredis", () => {
  it("the suite runs on the ioredis major its project names", () => {
    assert.strictEqual(pkg.version.split(".")[0], process.env["IOREDIS_MAJOR"])
  })
})
