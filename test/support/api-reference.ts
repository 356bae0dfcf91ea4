/**
 * Renders the API reference of the public modules (the namespaces `src/index.ts` re-exports) from
 * their JSDoc, with the TypeScript compiler API, into README.md between the api-reference markers.
 *
 *   npx tsx test/support/api-reference.ts           rewrite the README section (nothing else)
 *   npx tsx test/support/api-reference.ts --check   write nothing; exit 1 if the section is out of
 *                                                   date or an export (or interface member) has no
 *                                                   description
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const START = "<!-- api-reference:start -->"
const END = "<!-- api-reference:end -->"

/** The repository root (the directory holding tsconfig.json, src and README.md). */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

/** The result of rendering. */
export interface Rendered {
  /** The Markdown that goes between the markers. */
  readonly markdown: string
  /** Exports (`Module.name`) and interface members (`Module.Interface.member`) without a description. */
  readonly missing: ReadonlyArray<string>
  /** Every rendered export, as `Module.name` (namespace members as `Module.Namespace.name`). */
  readonly exports: ReadonlyArray<string>
}

interface Entry {
  readonly name: string
  readonly declarations: ReadonlyArray<ts.Declaration>
}

const printer = ts.createPrinter({ removeComments: true })

/** Prints a node without comments, indented by two spaces like the sources. */
const print = (node: ts.Node, source: ts.SourceFile): string =>
  printer.printNode(ts.EmitHint.Unspecified, node, source).replace(/^(?: {4})+/gm, (indent) => indent.slice(indent.length / 2))

/** The JSDoc text of a node, without its tags. */
const docOf = (node: ts.Node): string =>
  ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc).map((doc) => ts.getTextOfJSDocComment(doc.comment) ?? "")
    .join("\n\n").trim()

const tagsOf = (node: ts.Node, name: string): Array<string> =>
  ts.getJSDocTags(node).filter((tag) => tag.tagName.text === name).map((tag) =>
    (ts.getTextOfJSDocComment(tag.comment) ?? "").trim()
  )

const kindOf = (decl: ts.Declaration): string =>
  ts.isVariableDeclaration(decl)
    ? "const"
    : ts.isFunctionDeclaration(decl)
    ? "function"
    : ts.isClassDeclaration(decl)
    ? "class"
    : ts.isInterfaceDeclaration(decl)
    ? "interface"
    : ts.isTypeAliasDeclaration(decl)
    ? "type"
    : ts.isModuleDeclaration(decl)
    ? "namespace"
    : ts.SyntaxKind[decl.kind]

/** The declared signature, without bodies, comments or export modifiers. */
const signatureOf = (decl: ts.Declaration, name: string, checker: ts.TypeChecker): string => {
  const source = decl.getSourceFile()
  if (ts.isVariableDeclaration(decl)) {
    const init = decl.initializer
    const type = decl.type !== undefined
      ? print(decl.type, source)
      : init !== undefined && ts.isArrowFunction(init) && init.type !== undefined
      ? print(ts.factory.createFunctionTypeNode(init.typeParameters, init.parameters, init.type), source)
      : checker.typeToString(checker.getTypeAtLocation(decl), decl, ts.TypeFormatFlags.NoTruncation)
    return `const ${name}: ${type}`
  }
  if (ts.isFunctionDeclaration(decl)) {
    const { asteriskToken, name: id, typeParameters, parameters, type } = decl
    return print(ts.factory.createFunctionDeclaration(undefined, asteriskToken, id, typeParameters, parameters, type, undefined), source)
  }
  if (ts.isClassDeclaration(decl)) {
    return print(ts.factory.createClassDeclaration(undefined, decl.name, decl.typeParameters, decl.heritageClauses, []), source)
      .replace(/\{\s*\}$/, "{ ... }")
  }
  if (ts.isModuleDeclaration(decl)) return `namespace ${name}`
  return print(decl, source).replace(/^export (declare )?/, "")
}

/** Renders a `@default` as code when it is a literal, as prose otherwise. */
const defaultText = (text: string): string =>
  /^(".*"|'.*'|\{.*\}|\[.*\]|-?[\d.]+|true|false|null|undefined)$/.test(text) ? `\`${text}\`` : text

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

const fenced = (code: string): string => code.trimStart().startsWith("```") ? code : "```ts\n" + code + "\n```"

/** The public exports of a module (or namespace) symbol, namespace members included, in source order. */
const entriesOf = (symbol: ts.Symbol, prefix: string, checker: ts.TypeChecker): Array<Entry> =>
  checker.getExportsOfModule(symbol).flatMap((exported) => {
    const declarations = exported.declarations ?? []
    if (declarations.length === 0) return [] // a class's `prototype`
    const name = prefix + exported.name
    const nested = declarations.some(ts.isModuleDeclaration) ? entriesOf(exported, `${name}.`, checker) : []
    return [{ name, declarations }, ...nested]
  }).sort((a, b) => (a.declarations[0]?.getStart() ?? 0) - (b.declarations[0]?.getStart() ?? 0))

const renderEntry = (moduleName: string, entry: Entry, checker: ts.TypeChecker, missing: Array<string>): string => {
  const description = entry.declarations.map(docOf).filter((doc) => doc !== "").join("\n\n")
  if (description === "") missing.push(`${moduleName}.${entry.name}: no description`)
  const kinds = [...new Set(entry.declarations.map(kindOf))].join(", ")
  const since = [...new Set(entry.declarations.flatMap((decl) => tagsOf(decl, "since")))].join(", ")
  const lines = [`##### \`${entry.name}\``, "", `*${kinds}*${since === "" ? "" : ` · since ${since}`}`, ""]
  const signatures = entry.declarations.map((decl) => signatureOf(decl, entry.name.split(".").pop() ?? "", checker))
  lines.push("```ts", signatures.join("\n\n"), "```", "")
  if (description !== "") lines.push(description, "")
  for (const decl of entry.declarations.filter(ts.isInterfaceDeclaration)) {
    const members = decl.members.filter((member) => ts.isPropertySignature(member) || ts.isMethodSignature(member))
    if (members.length > 0) lines.push("Members:", "")
    for (const member of members) {
      const memberName = member.name?.getText() ?? "?"
      const doc = oneLine(docOf(member))
      if (doc === "") missing.push(`${moduleName}.${entry.name}.${memberName}: no description`)
      const defaults = tagsOf(member, "default").map((text) => ` Default: ${defaultText(oneLine(text))}.`).join("")
      lines.push(`- \`${memberName}\`${doc === "" ? "" : ` — ${doc}`}${defaults}`)
    }
    if (members.length > 0) lines.push("")
  }
  for (const example of entry.declarations.flatMap((decl) => tagsOf(decl, "example"))) {
    lines.push("**Example**", "", fenced(example), "")
  }
  return lines.join("\n")
}

/** Public modules reached by their own subpath rather than through `src/index.ts`, with their import line. */
export const subpathModules = {
  promise: "import Redlock from \"effect-redlock/promise\"",
  testing: "import * as RedlockTest from \"effect-redlock/testing\""
} as const

/** Renders the reference of the modules `src/index.ts` re-exports, from the program of tsconfig.json. */
export const render = (root: string = repoRoot): Rendered => {
  const configPath = path.join(root, "tsconfig.json")
  const config = ts.readConfigFile(configPath, ts.sys.readFile)
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root, undefined, configPath)
  const program = ts.createProgram(parsed.fileNames, parsed.options)
  const checker = program.getTypeChecker()
  const index = program.getSourceFile(path.join(root, "src", "index.ts"))
  const indexSymbol = index === undefined ? undefined : checker.getSymbolAtLocation(index)
  if (indexSymbol === undefined) throw new Error(`no src/index.ts module in ${configPath}`)

  const missing: Array<string> = []
  const exports: Array<string> = []
  const sections = ["<!-- Generated from the JSDoc by `npx tsx test/support/api-reference.ts`; do not edit by hand. -->"]
  const renderModule = (moduleName: string, moduleSymbol: ts.Symbol, importLine: string) => {
    const moduleFile = moduleSymbol.declarations?.find(ts.isSourceFile)
    const overview = moduleFile?.statements[0] === undefined ? "" : docOf(moduleFile.statements[0])
    sections.push(`### ${moduleName}`, importLine)
    if (overview !== "") sections.push(overview)
    const byCategory = new Map<string, Array<Entry>>()
    for (const entry of entriesOf(moduleSymbol, "", checker)) {
      exports.push(`${moduleName}.${entry.name}`)
      const category = entry.declarations.flatMap((decl) => tagsOf(decl, "category"))[0] ?? "other"
      byCategory.set(category, [...(byCategory.get(category) ?? []), entry])
    }
    for (const [category, entries] of [...byCategory].sort(([a], [b]) => a.localeCompare(b))) {
      sections.push(`#### ${category.charAt(0).toUpperCase()}${category.slice(1)}`)
      for (const entry of entries) sections.push(renderEntry(moduleName, entry, checker, missing).trimEnd())
    }
  }
  for (const moduleExport of checker.getExportsOfModule(indexSymbol)) {
    const moduleName = moduleExport.name
    renderModule(
      moduleName,
      checker.getAliasedSymbol(moduleExport),
      `\`import { ${moduleName} } from "effect-redlock"\` or \`import * as ${moduleName} from "effect-redlock/${moduleName}"\``
    )
  }
  // Subpath modules outside the barrel.
  for (const [subpath, importLine] of Object.entries(subpathModules)) {
    const file = program.getSourceFile(path.join(root, "src", `${subpath}.ts`))
    const symbol = file === undefined ? undefined : checker.getSymbolAtLocation(file)
    if (symbol === undefined) throw new Error(`no src/${subpath}.ts module`)
    renderModule(subpath, symbol, `\`${importLine}\``)
  }
  return { markdown: sections.join("\n\n"), missing, exports }
}

/** The text between the markers, or `undefined` when the README has no marker section. */
export const currentSection = (readme: string): string | undefined => {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END, start)
  return start === -1 || end === -1 ? undefined : readme.slice(start + START.length, end).trim()
}

/** The README with the marker section replaced (or appended, under an `## API reference` heading). */
export const withSection = (readme: string, markdown: string): string => {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END, start)
  const block = `${START}\n${markdown}\n${END}`
  return start === -1 || end === -1
    ? `${readme.trimEnd()}\n\n## API reference\n\n${block}\n`
    : readme.slice(0, start) + block + readme.slice(end + END.length)
}

const main = (check: boolean): number => {
  const readmePath = path.join(repoRoot, "README.md")
  const { markdown, missing } = render()
  for (const line of missing) console.error(`missing description: ${line}`)
  if (check) {
    const upToDate = currentSection(fs.readFileSync(readmePath, "utf8")) === markdown.trim()
    if (!upToDate) console.error("README.md: the API reference section is out of date (run without --check)")
    return upToDate && missing.length === 0 ? 0 : 1
  }
  // Re-read right before writing: the rest of README.md is edited by hand, only the section is ours.
  const readme = fs.readFileSync(readmePath, "utf8")
  const updated = withSection(readme, markdown)
  if (updated !== readme) fs.writeFileSync(readmePath, updated)
  console.log(updated === readme ? "README.md: API reference up to date" : "README.md: API reference written")
  return 0
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.includes("--check"))
}
