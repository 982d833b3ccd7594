// The configuration tables of the docs, generated from src/config.ts: the essentials in the
// README, everything in docs/configuration.md. `npm run docs` writes them; a test checks them.
import { configMarkdown, type Group } from './config.js';

export interface DocBlock {
  file: string;
  marker: string;
  text: string;
}

export function configDocBlocks(): DocBlock[] {
  const all = configMarkdown();
  const essentials = configMarkdown(['essentials' as Group]);
  return [
    { file: 'README.md', marker: 'config:essentials', text: essentials },
    { file: 'docs/configuration.md', marker: 'config:all', text: all },
  ];
}
