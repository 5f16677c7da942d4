// Lint: typescript-eslint's strict, type-checked rules over src, test and bench (npm run lint).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'coverage/**', 'bench/*.mjs', 'test/fixtures/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // noUncheckedIndexedAccess makes every index possibly undefined; `!` after an index the code
      // has bounded is how it says so, and the type checker keeps the rest honest.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers and booleans print as they should in messages and in SQL built from constants.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // `(x) => set.add(x)` and `() => void promise` are ordinary callbacks.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Methods that implement an async interface (an authenticator, a simulator handler) may have
      // nothing to await; the interface, not the body, decides that they return a promise.
      '@typescript-eslint/require-await': 'off',
      // `SELECT id::text ... ORDER BY id` sorts by the text the SELECT made ('10' before '9'): an
      // unqualified ORDER BY name means the output column before the table's. A test read the
      // tenth run first and failed CI at random (sites-workers-paused); order by r.id instead.
      'no-restricted-syntax': [
        'error',
        ...['TemplateElement[value.raw', 'Literal[value'].map((node) => ({
          selector: `${node}=/(?:SELECT|,)\\s*(\\w+)::text\\s*(?:,|FROM\\b)[^;]*ORDER BY\\s+\\1\\b/i]`,
          message: 'ORDER BY a name the SELECT casts to text sorts by that text (10 before 9): qualify it (ORDER BY r.id) or alias the cast.',
        })),
      ],
    },
  },
);
