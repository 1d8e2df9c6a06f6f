// Types of the wgbert browser package (wgbert.js).

/** Where the model's files come from: a folder URL, or the files themselves by name
 * relative to the model root (`config.json`, `1_Pooling/config.json`, ...). */
export type ModelSource =
  | string
  | URL
  | Map<string, Uint8Array | ArrayBuffer | Blob | string>
  | Record<string, Uint8Array | ArrayBuffer | Blob | string>
  | FileList
  | File[];

/** Progress of long work: downloads (`stage: "download"`, bytes of `file`), the weight
 * upload (`stage: "loading weights"`, tensors, `item` the tensor), embedding (texts). */
export interface Progress {
  stage: string;
  done: number;
  total: number;
  file?: string;
  item?: string;
}

export interface LoadOptions {
  /** Storage precision; default f16 where the adapter offers `shader-f16`, else f32. */
  dtype?: "f32" | "f16";
  /** Tokens per GPU batch at most (default: what the adapter's limits allow, up to 32768). */
  maxTokens?: number;
  /** Cut texts longer than the model's limit instead of refusing them. */
  truncate?: boolean;
  /** The model's name in errors and `info()` (default: its URL, or "model"). */
  name?: string;
  onProgress?: (p: Progress) => void;
  /** Where the .wasm is, when not beside the package (see `initWgbert`). */
  wasm?: string | URL | Response | WebAssembly.Module;
}

export interface EncodeOptions {
  normalize?: boolean;
  /** A literal prompt put before each text. */
  prompt?: string;
  /** One of the model's named prompts (`query`, `document`, ...). */
  promptName?: string;
  /** Keep the first `dimensions` values (Matryoshka). */
  dimensions?: number;
  /** Pool the encoder's output this way instead of the model's own modules; "none" gives
   * every token's state. */
  pooling?: "cls" | "mean" | "none";
  /** ColBERT's per-token vectors of queries or documents. */
  multiVector?: "query" | "document";
  /** Sparse models: keep the largest `topKTerms` terms. */
  topKTerms?: number;
  onProgress?: (p: Progress) => void;
}

export interface SparseVector {
  indices: Uint32Array;
  values: Float32Array;
}

export interface Candidate {
  token_id: number;
  token: string;
  score: number;
  sequence: string;
}

export interface MaskPrediction {
  /** The [MASK]'s token position in the tokenized text. */
  position: number;
  candidates: Candidate[];
}

export interface Classification {
  label: string;
  score: number;
  logits: number[];
  scores: number[];
}

export interface RankedDocument {
  corpus_id: number;
  score: number;
  text?: string;
}

export interface ModelInfo {
  model: string;
  kind: "plain" | "embedder" | "cross-encoder" | "colbert" | "sparse";
  dtype: "f32" | "f16";
  hidden_size: number;
  dimensions: number;
  max_length: number | null;
  capacity: number;
  prompts: Record<string, string>;
  default_prompt_name: string | null;
  labels: string[];
  heads: { mlm: boolean; classifier: number | null };
  adapter: {
    name: string;
    backend: string;
    device_type: string;
    driver: string;
    description: string;
    capabilities: {
      f16: boolean;
      subgroups: boolean;
      max_storage_binding: number;
      max_buffer_size: number;
      max_workgroup_storage: number;
      max_invocations: number;
      [key: string]: unknown;
    };
    /** The browser's GPUAdapterInfo and features, where it gave them. */
    browser: {
      vendor: string;
      architecture: string;
      device: string;
      description: string;
      features: string[];
    } | null;
  };
  weight_bytes: number;
}

/** Loads and instantiates the WebAssembly module once. */
export function initWgbert(wasm?: string | URL | Response | WebAssembly.Module): Promise<unknown>;

/** Why this browser cannot run wgbert (no WebGPU), or null. */
export function missingWebGpu(): string | null;

/** A model on the page's WebGPU device. Calls run one at a time, in order; errors are
 * `Error`s with the library's message. */
export class Encoder {
  static load(source: ModelSource, options?: LoadOptions): Promise<Encoder>;
  info(): ModelInfo;
  encode(texts: string, options?: EncodeOptions & { pooling?: "cls" | "mean"; multiVector?: undefined }): Promise<Float32Array>;
  encode(texts: string[], options?: EncodeOptions & { pooling?: "cls" | "mean"; multiVector?: undefined }): Promise<Float32Array[]>;
  encode(texts: string, options: EncodeOptions & ({ pooling: "none" } | { multiVector: "query" | "document" })): Promise<Float32Array[]>;
  encode(texts: string[], options: EncodeOptions & ({ pooling: "none" } | { multiVector: "query" | "document" })): Promise<Float32Array[][]>;
  encode(texts: string | string[], options?: EncodeOptions): Promise<Float32Array | Float32Array[] | Float32Array[][] | SparseVector | SparseVector[]>;
  embedRaw(
    texts: string[],
    options?: Record<string, unknown>,
    onProgress?: (p: Progress) => void,
  ): Promise<Array<{ n_tokens: number; vectors?: Float32Array[]; indices?: Uint32Array; values?: Float32Array }>>;
  fillMask(texts: string, options?: { topK?: number }): Promise<MaskPrediction[]>;
  fillMask(texts: string[], options?: { topK?: number }): Promise<MaskPrediction[][]>;
  classify(texts: string): Promise<Classification>;
  classify(texts: string[]): Promise<Classification[]>;
  rank(
    query: string,
    documents: string[],
    options?: { topK?: number; rawScores?: boolean; returnDocuments?: boolean },
  ): Promise<RankedDocument[]>;
  dispose(): Promise<void>;
}
