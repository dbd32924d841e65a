// ESLint for the TypeScript sources (flat config). Formatting is prettier's job; this checks correctness.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['out/**', 'node_modules/**', 'test/fixtures/**', 'test/golden/**', 'test/editors/code-server/node_modules/**', 'test/editors/code-server/fake-python-extension/**', 'server/src/knowledge/generate-operators.js', 'test-results/**', '**/qdq-out/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // Tests and benchmarks read JSON written by other processes and poke at it; the shipped code stays typed.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Launchers and generators are plain CommonJS scripts run by node.
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        console: 'readonly',
        __dirname: 'readonly',
        __filename: 'readonly',
      }, },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
