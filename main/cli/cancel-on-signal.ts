import { removeLiveTempFiles } from '../io/atomic-file.ts';

/**
 * Ctrl-C (or SIGTERM) cancels the command's running jobs through `controller`; they remove their
 * temporary files and nothing partial remains. A second signal exits at once (code 130), after
 * removing the temporary files being written, the workers' included (they report theirs to the
 * main thread). Returns the function that removes the handlers.
 */
export function cancelOnSignal(controller: AbortController): () => void {
  const onSignal = (): void => {
    if (controller.signal.aborted) {
      removeLiveTempFiles();
      process.exit(130);
    }
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
