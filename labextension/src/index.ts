/**
 * "Make this folder an environment": a command on folders of the file browser (context
 * menu and palette) that sends the folder to the tljh-rees service as a spec version,
 * builds it, follows the build's log in a panel, then launches it or opens it in the
 * composer. Every call goes to this server's own `rees-lab/` routes (tljh_rees_lab),
 * which act for the server's owner with the server's Hub token.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, MainAreaWidget, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

const COMMAND = 'tljh-rees:make-environment';
const LABEL = 'Make this folder an environment';
const FINAL_PHASES = ['built', 'failed', 'cancelled'];

interface Profile { name: string; description: string }
interface Status {
  available: boolean; reason?: string; name?: string; can_build?: boolean;
  build_reason?: string | null; profiles?: Profile[]; default_profile?: string; prefix?: string;
}
interface Problem { file: string; line: number | null; message: string; severity: string }
interface Check {
  rees_files: string[]; buildpack_label: string | null; dockerfile: string | null;
  error: string | null;
  problems: Problem[]; replaces: boolean;
  folder: { files: number; bytes: number; ignored: string[]; ignored_count: number;
    too_large: { path: string; bytes: number }[]; links: string[]; always_left_out: string[] };
}
interface Started {
  build: { id: string; environment: string; status: string; error: string | null };
  spec: string; links: { launch: string; composer: string };
}
interface Values { name: string; description: string; profile: string; public: boolean }

class ServiceError extends Error {
  constructor(message: string, readonly details: any = {}) { super(message); }
}

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'rees-lab', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (e) {
    throw new ServiceError(`This server did not answer (${e}).`);
  }
  const text = await response.text();
  let data: any = {};
  try { data = text ? JSON.parse(text) : {}; } catch { data = { error: text }; }
  if (!response.ok) {
    throw new ServiceError(data.error || data.message || response.statusText, data);
  }
  return data as T;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K, text = '', className = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) { node.textContent = text; }
  if (className) { node.className = className; }
  return node;
}

function size(bytes: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let value = bytes; let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function suggestedName(path: string): string {
  const base = (path.split('/').filter(Boolean).pop() || 'environment').toLowerCase();
  const name = base.replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  return (name || 'environment').slice(0, 63);
}

/** The dialog's body: the form, and what the service says of the folder. */
class EnvironmentForm extends Widget {
  constructor(readonly path: string, status: Status, values: Values, check: Promise<Check>,
              error = '') {
    super();
    this.addClass('rees-lab-form');
    const form = this.node;
    form.appendChild(element('div', `Folder: ${path || '(the top folder)'}`));
    this.nameInput = this.field('Name', element('input'));
    this.nameInput.name = 'rees-name';
    this.nameInput.value = values.name;
    this.nameInput.pattern = '[a-z0-9][a-z0-9._-]*';
    this.descriptionInput = this.field('Description', element('textarea'));
    this.descriptionInput.name = 'rees-description';
    this.descriptionInput.rows = 2;
    this.descriptionInput.value = values.description;
    this.profileSelect = this.field('Profile', element('select'));
    this.profileSelect.name = 'rees-profile';
    const site = status.default_profile ? ` (${status.default_profile})` : '';
    this.profileSelect.appendChild(new Option(`The site's default${site}`, ''));
    for (const profile of status.profiles || []) {
      const label = profile.description ? `${profile.name}: ${profile.description}` : profile.name;
      this.profileSelect.appendChild(new Option(label, profile.name));
    }
    this.profileSelect.value = values.profile;
    this.visibilitySelect = this.field('Visibility', element('select'));
    this.visibilitySelect.name = 'rees-visibility';
    this.visibilitySelect.appendChild(new Option('Private: only you (and admins)', 'private'));
    this.visibilitySelect.appendChild(new Option('Public: everyone on this Hub', 'public'));
    this.visibilitySelect.value = values.public ? 'public' : 'private';
    if (error) { form.appendChild(element('div', error, 'rees-lab-error rees-lab-form-error')); }
    this.checks = element('div', 'Checking the folder…', 'rees-lab-checks');
    form.appendChild(this.checks);
    check.then(result => this.showCheck(result), e => this.showCheckError(e));
  }

  private field<T extends HTMLElement>(label: string, input: T): T {
    const wrapper = element('label', label);
    wrapper.appendChild(input);
    this.node.appendChild(wrapper);
    return input;
  }

  private list(title: string, items: string[], total: number, className = ''): void {
    if (!items.length) { return; }
    const more = total > items.length ? ` (first ${items.length} of ${total})` : '';
    this.checks.appendChild(element('div', title + more, className));
    const ul = element('ul');
    for (const item of items) { ul.appendChild(element('li', item)); }
    this.checks.appendChild(ul);
  }

  private showCheck(check: Check): void {
    const box = this.checks;
    box.textContent = '';
    box.dataset.checked = 'true';
    const f = check.folder;
    box.appendChild(element('div', `${f.files} files, ${size(f.bytes)}, will be sent.`));
    if (check.rees_files.length) {
      this.list('REES files:', check.rees_files, check.rees_files.length);
    } else {
      box.appendChild(element('div', 'No REES files: repo2docker will install only a default ' +
        'Python and Jupyter. Add a requirements.txt, environment.yml or Dockerfile.',
      'rees-lab-warning'));
    }
    if (check.buildpack_label) {
      box.appendChild(element('div', `repo2docker will build it as: ${check.buildpack_label}`,
        'rees-lab-buildpack'));
    }
    if (check.dockerfile) {
      const details = element('details');
      details.appendChild(element('summary', 'The Dockerfile repo2docker makes'));
      details.appendChild(element('pre', check.dockerfile));
      box.appendChild(details);
    }
    if (check.error) { box.appendChild(element('div', check.error, 'rees-lab-error')); }
    this.list('Problems:', check.problems.map(p =>
      `${p.severity}: ${p.file}${p.line ? `:${p.line}` : ''}: ${p.message}`),
    check.problems.length, 'rees-lab-warning');
    this.list('Left out by .gitignore:', f.ignored, f.ignored_count, 'rees-lab-warning');
    this.list('Too large, left out:', f.too_large.map(t => `${t.path} (${size(t.bytes)})`),
      f.too_large.length, 'rees-lab-warning');
    this.list('Links, left out:', f.links, f.links.length, 'rees-lab-warning');
    box.appendChild(element('div', `Always left out: ${f.always_left_out.join(', ')}.`));
    if (check.replaces) {
      box.appendChild(element('div', 'A spec of this name is yours: these files become its ' +
        'new version.'));
    }
  }

  private showCheckError(e: any): void {
    this.checks.textContent = '';
    this.checks.dataset.checked = 'error';
    this.checks.appendChild(element('div', `${e.message}`, 'rees-lab-error'));
  }

  getValue(): Values {
    return { name: this.nameInput.value.trim(), description: this.descriptionInput.value,
      profile: this.profileSelect.value, public: this.visibilitySelect.value === 'public' };
  }

  private nameInput: HTMLInputElement;
  private descriptionInput: HTMLTextAreaElement;
  private profileSelect: HTMLSelectElement;
  private visibilitySelect: HTMLSelectElement;
  private checks: HTMLDivElement;
}

/** A panel following one build: its phases and log, then Launch / Open in composer. */
class BuildLog extends Widget {
  constructor(started: Started) {
    super();
    this.addClass('rees-lab-log');
    this.id = `rees-lab-build-${started.build.id}`;
    this.title.label = `Build: ${started.build.environment}`;
    this.title.closable = true;
    this.status = element('div', `Build ${started.build.id}: ${started.build.status}`,
      'rees-lab-log-status');
    const actions = element('div', '', 'rees-lab-log-actions');
    this.launch = element('button', 'Launch', 'jp-mod-styled jp-mod-accept');
    this.launch.hidden = true;
    this.launch.onclick = () => window.open(started.links.launch, '_blank');
    const composer = element('button', 'Open in composer', 'jp-mod-styled');
    composer.onclick = () => window.open(started.links.composer, '_blank');
    actions.append(this.launch, composer);
    this.log = element('pre');
    this.node.append(this.status, actions, this.log);
    const settings = ServerConnection.makeSettings();
    // An EventSource cannot send headers: the server's XSRF token goes in the query, as
    // JupyterHub asks of cookie-authenticated requests made by scripts.
    const xsrf = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    const url = URLExt.join(settings.baseUrl, 'rees-lab/builds', started.build.id, 'events') +
      (xsrf ? `?_xsrf=${encodeURIComponent(decodeURIComponent(xsrf[1]))}` : '');
    this.source = new EventSource(url);
    this.source.addEventListener('phase', (e: MessageEvent) => this.phase(JSON.parse(e.data)));
    this.source.addEventListener('log', (e: MessageEvent) => this.line(JSON.parse(e.data)));
    this.source.addEventListener('error', (e: MessageEvent) => {
      if (e.data) {
        this.finish('failed', JSON.parse(e.data).error);
      } else if (this.source.readyState === EventSource.CLOSED && !this.node.dataset.phase) {
        this.status.textContent = 'The build\'s log could not be followed (this server ' +
          'refused or lost the connection). The build goes on: see it on the service\'s ' +
          'Environments page.';
        this.status.classList.add('rees-lab-error');
      }
    });
  }

  private line(event: { message?: string }): void {
    const message = event.message || '';
    const atEnd = this.log.scrollTop + this.log.clientHeight >= this.log.scrollHeight - 4;
    this.log.appendChild(document.createTextNode(message.endsWith('\n') ? message : message + '\n'));
    if (atEnd) { this.log.scrollTop = this.log.scrollHeight; }
  }

  private phase(event: { phase: string; message?: string }): void {
    this.line({ message: `[${event.phase}] ${event.message || ''}` });
    if (FINAL_PHASES.includes(event.phase)) {
      this.finish(event.phase, event.message || '');
    } else {
      this.status.textContent = `Building: ${event.phase}`;
    }
  }

  private finish(phase: string, message: string): void {
    this.source.close();
    this.node.dataset.phase = phase;
    if (phase === 'built') {
      this.status.textContent = 'Built. Launch it, or open it in the composer to change it.';
      this.launch.hidden = false;
    } else {
      this.status.textContent = `The build ${phase}: ${message}`.trim() + ' Fix the folder\'s ' +
        'files and choose "' + LABEL + '" again, or edit them in the composer.';
      this.status.classList.add('rees-lab-error');
    }
  }

  dispose(): void {
    this.source.close();
    super.dispose();
  }

  private status: HTMLDivElement;
  private launch: HTMLButtonElement;
  private log: HTMLPreElement;
  private source: EventSource;
}

async function makeEnvironment(app: JupyterFrontEnd, status: Status, path: string) {
  let values: Values = { name: suggestedName(path), description: '',
    profile: '', public: false };
  let error = '';
  const check = call<Check>('inspect', { method: 'POST',
    body: JSON.stringify({ path, name: values.name }) });
  check.catch(() => undefined);  // shown in the dialog
  for (;;) {
    const body = new EnvironmentForm(path, status, values, check, error);
    const result = await showDialog<Values>({
      title: LABEL, body, focusNodeSelector: 'input',
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Build' })]
    });
    if (!result.button.accept || !result.value) { return; }
    values = result.value;
    try {
      const started = await call<Started>('build', { method: 'POST',
        body: JSON.stringify({ ...values, path }) });
      const panel = new MainAreaWidget({ content: new BuildLog(started) });
      panel.id = `rees-lab-panel-${started.build.id}`;
      panel.title.label = `Build: ${started.build.environment}`;
      app.shell.add(panel, 'main', { mode: 'split-right' });
      app.shell.activateById(panel.id);
      return;
    } catch (e: any) {
      const field = e.details && e.details.field ? ` (${e.details.field})` : '';
      error = `${e.message}${field}`;
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'tljh-rees-lab:plugin',
  description: 'Make a folder of this server an environment of the tljh-rees service.',
  autoStart: true,
  requires: [IDefaultFileBrowser],
  optional: [ICommandPalette],
  activate: (app: JupyterFrontEnd, browser: IDefaultFileBrowser, palette: ICommandPalette | null) => {
    let status: Status = { available: false, reason: 'Asking the tljh-rees service…' };
    const chosenFolder = (): string | null => {
      const selected = browser.selectedItems().next();
      const item = selected && !selected.done ? selected.value : undefined;
      if (item) { return item.type === 'directory' ? item.path : null; }
      return browser.model.path;
    };
    app.commands.addCommand(COMMAND, {
      // a menu shows no tooltips: a disabled entry says why in its label
      label: () => status.can_build ? LABEL : (status.available
        ? `${LABEL} (needs the build permission)` : `${LABEL} (the service is unavailable)`),
      caption: () => status.can_build ? 'Build this folder into an environment with repo2docker'
        : (status.available ? status.build_reason : status.reason) || '',
      isEnabled: () => !!status.available && !!status.can_build,
      execute: async () => {
        const path = chosenFolder();
        if (path === null) {
          await showDialog({ title: LABEL, body: 'Choose a folder (not a file) in the file browser.',
            buttons: [Dialog.okButton()] });
          return;
        }
        await makeEnvironment(app, status, path);
      }
    });
    app.contextMenu.addItem({ command: COMMAND, selector: '.jp-DirListing-item[data-isdir="true"]',
      rank: 60 });
    if (palette) { palette.addItem({ command: COMMAND, category: 'Environments' }); }
    call<Status>('status').then(answer => { status = answer; }, e => {
      status = { available: false, reason: `${e.message}` };
    }).then(() => app.commands.notifyCommandChanged(COMMAND));
  }
};

export default plugin;
