/** Types of bin/bundle-stamp.js (plain JavaScript: it runs before the TypeScript sources can be loaded). */
export declare const BUNDLE: string
export declare const STAMP: string
export declare function fingerprint (root: string, files: string[]): string[]
export declare function currentBundle (root: string): string | undefined
