import pkg from '../package.json' with { type: 'json' };

/** The app's version, from package.json (the bundler inlines it): the one place it is read. */
export const VERSION: string = pkg.version;
