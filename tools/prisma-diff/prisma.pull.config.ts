// Config for `prisma db pull` / `migrate diff` with a wrapped adapter-pg that reports
// catalog types `name` (oid 19) and `"char"` (oid 18) -- and their arrays -- as text.
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

const AS_TEXT: Record<number, number> = { 18: 25, 19: 25, 1002: 1009, 1003: 1009 };
let patched = false;
function patch(adapter: any) {
  if (patched) return;
  // PgQueryable.prototype (shared by the adapter and its transactions)
  let proto = Object.getPrototypeOf(adapter);
  while (proto && !Object.prototype.hasOwnProperty.call(proto, "performIO")) proto = Object.getPrototypeOf(proto);
  if (!proto) throw new Error("adapter-pg: performIO not found");
  const orig = proto.performIO;
  proto.performIO = async function (query: any) {
    const result = await orig.call(this, query);
    for (const f of result?.fields ?? []) {
      if (AS_TEXT[f.dataTypeID] !== undefined) f.dataTypeID = AS_TEXT[f.dataTypeID];
    }
    return result;
  };
  patched = true;
}

function makeAdapter() {
  const factory: any = new PrismaPg({ connectionString: process.env.DATABASE_URL, idleTimeoutMillis: 50 });
  for (const m of ["connect", "connectToShadowDb"]) {
    const orig = factory[m].bind(factory);
    factory[m] = async () => { const a = await orig(); patch(a); return a; };
  }
  return factory;
}

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => makeAdapter(),
});
