// A form generated from a plugin's configuration JSON Schema (as pydantic writes it):
// string, number, integer, boolean, enum, array of strings; anything else as JSON.
// A field left empty is removed from the configuration, so the plugin's default applies.

import { useEffect, useState } from "react";
import type { Json, JsonObject, JsonSchema } from "./types";

type Kind = "string" | "number" | "integer" | "boolean" | "enum" | "string-list" | "json";

interface Field {
  key: string;
  schema: JsonSchema;
  kind: Kind;
  required: boolean;
  nullable: boolean;
}

function resolve(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let current = schema;
  for (let depth = 0; depth < 10 && current.$ref; depth++) {
    const name = current.$ref.replace(/^#\/\$defs\//, "");
    const target = root.$defs?.[name];
    if (!target) break;
    const { $ref: _ref, ...rest } = current;
    current = { ...target, ...rest };
  }
  if (current.allOf && current.allOf.length === 1) {
    const { allOf, ...rest } = current;
    current = { ...resolve(allOf[0], root), ...rest };
  }
  return current;
}

function fieldOf(key: string, raw: JsonSchema, root: JsonSchema, required: boolean): Field {
  let schema = resolve(raw, root);
  let nullable = false;
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) {
    const nonNull = alternatives.filter((s) => s.type !== "null");
    nullable = nonNull.length < alternatives.length;
    if (nonNull.length === 1) {
      const { anyOf: _a, oneOf: _o, ...rest } = schema;
      schema = { ...resolve(nonNull[0], root), ...rest };
    } else {
      return { key, schema, kind: "json", required, nullable };
    }
  }
  let kind: Kind = "json";
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.enum && schema.enum.length > 0) kind = "enum";
  else if (type === "string") kind = "string";
  else if (type === "number") kind = "number";
  else if (type === "integer") kind = "integer";
  else if (type === "boolean") kind = "boolean";
  else if (type === "array" && resolve(schema.items ?? {}, root).type === "string") kind = "string-list";
  return { key, schema, kind, required, nullable };
}

export function schemaFields(schema: JsonSchema | null | undefined): Field[] {
  if (!schema || !schema.properties) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([key, property]) =>
    fieldOf(key, property, schema, required.has(key)),
  );
}

function describeDefault(value: Json | undefined): string {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function JsonField({
  value,
  onChange,
  testId,
  placeholder,
}: {
  value: Json | undefined;
  onChange: (value: Json | undefined) => void;
  testId: string;
  placeholder: string;
}) {
  const [text, setText] = useState(value === undefined ? "" : JSON.stringify(value, null, 2));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    // Follow outside changes (another field, the raw JSON editor) unless mid-edit.
    setText((current) => {
      try {
        if (current.trim() && JSON.stringify(JSON.parse(current)) === JSON.stringify(value)) {
          return current;
        }
      } catch {
        return current;
      }
      return value === undefined ? "" : JSON.stringify(value, null, 2);
    });
  }, [value]);
  return (
    <>
      <textarea
        className={`json-input ${error ? "invalid" : ""}`}
        data-testid={testId}
        value={text}
        rows={Math.min(8, Math.max(2, text.split("\n").length))}
        placeholder={placeholder}
        spellCheck={false}
        onChange={(e) => {
          setText(e.target.value);
          if (!e.target.value.trim()) {
            setError(null);
            onChange(undefined);
            return;
          }
          try {
            onChange(JSON.parse(e.target.value) as Json);
            setError(null);
          } catch (exc) {
            setError(`not JSON yet: ${(exc as Error).message}`);
          }
        }}
      />
      {error && <div className="field-error">{error}</div>}
    </>
  );
}

function Input({
  field,
  value,
  onChange,
  testId,
}: {
  field: Field;
  value: Json | undefined;
  onChange: (value: Json | undefined) => void;
  testId: string;
}) {
  const placeholder = describeDefault(field.schema.default);
  switch (field.kind) {
    case "boolean": {
      const effective = value === undefined ? field.schema.default === true : value === true;
      return (
        <label className="checkbox">
          <input
            type="checkbox"
            data-testid={testId}
            checked={effective}
            onChange={(e) => onChange(e.target.checked)}
          />
          {value === undefined ? <span className="muted">default</span> : null}
        </label>
      );
    }
    case "enum":
      return (
        <select
          data-testid={testId}
          value={value === undefined || value === null ? "" : JSON.stringify(value)}
          onChange={(e) => onChange(e.target.value === "" ? undefined : (JSON.parse(e.target.value) as Json))}
        >
          <option value="">{placeholder ? `default (${placeholder})` : "— not set —"}</option>
          {(field.schema.enum ?? []).map((option) => (
            <option key={JSON.stringify(option)} value={JSON.stringify(option)}>
              {String(option)}
            </option>
          ))}
        </select>
      );
    case "number":
    case "integer":
      return (
        <input
          type="number"
          data-testid={testId}
          step={field.kind === "integer" ? 1 : "any"}
          min={field.schema.minimum ?? field.schema.exclusiveMinimum}
          max={field.schema.maximum ?? field.schema.exclusiveMaximum}
          value={typeof value === "number" ? value : ""}
          placeholder={placeholder}
          onChange={(e) => {
            if (e.target.value === "") return onChange(undefined);
            const parsed = Number(e.target.value);
            if (!Number.isNaN(parsed)) onChange(parsed);
          }}
        />
      );
    case "string-list":
      return (
        <textarea
          data-testid={testId}
          rows={3}
          value={Array.isArray(value) ? value.map(String).join("\n") : ""}
          placeholder={placeholder ? `default: ${placeholder}` : "one per line"}
          onChange={(e) => {
            const lines = e.target.value.split("\n");
            onChange(e.target.value === "" ? undefined : lines);
          }}
        />
      );
    case "string":
      return (
        <input
          type="text"
          data-testid={testId}
          value={typeof value === "string" ? value : value === undefined || value === null ? "" : String(value)}
          placeholder={placeholder || (field.schema.format ?? "")}
          onChange={(e) => onChange(e.target.value === "" ? undefined : e.target.value)}
        />
      );
    default:
      return <JsonField value={value} onChange={onChange} testId={testId} placeholder={placeholder || "JSON"} />;
  }
}

export function SchemaForm({
  schema,
  value,
  onChange,
}: {
  schema: JsonSchema | null | undefined;
  value: JsonObject;
  onChange: (value: JsonObject) => void;
}) {
  const fields = schemaFields(schema);
  if (fields.length === 0) {
    return <p className="muted small">This plugin declares no configuration fields.</p>;
  }
  const set = (key: string, next: Json | undefined) => {
    const copy: JsonObject = { ...value };
    if (next === undefined) delete copy[key];
    else copy[key] = next;
    onChange(copy);
  };
  return (
    <div className="schema-form" data-testid="config-form">
      {fields.map((field) => (
        <div className="form-row" key={field.key}>
          <label className="form-label" htmlFor={`config-${field.key}`}>
            {field.schema.title ?? field.key}
            {field.required && <span className="required" title="required"> *</span>}
            {value[field.key] !== undefined && !field.required && (
              <button
                type="button"
                className="link small"
                title="remove: use the default"
                onClick={() => set(field.key, undefined)}
              >
                reset
              </button>
            )}
          </label>
          <Input
            field={field}
            value={value[field.key]}
            onChange={(next) => set(field.key, next)}
            testId={`config-field-${field.key}`}
          />
          {field.schema.description && <div className="help">{field.schema.description}</div>}
        </div>
      ))}
    </div>
  );
}
