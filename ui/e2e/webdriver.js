import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// A W3C WebDriver client over plain fetch (no test framework), for the tests
// that drive the real app through tauri-driver. `at` holds the driver's
// address and the session once the test has them.
export function webdriverClient(artifacts) {
  const at = { base: '', session: '' };

  async function webdriver(method, path, body) {
    const response = await fetch(`${at.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json.value)}`);
    return json.value;
  }

  const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';
  const find = async (css) => (await webdriver('POST', `/session/${at.session}/element`, { using: 'css selector', value: css }))[ELEMENT];
  const text = async (css) => webdriver('GET', `/session/${at.session}/element/${await find(css)}/text`);
  const click = async (css) => webdriver('POST', `/session/${at.session}/element/${await find(css)}/click`, {});
  const clear = async (css) => webdriver('POST', `/session/${at.session}/element/${await find(css)}/clear`, {});
  const type = async (css, value) => webdriver('POST', `/session/${at.session}/element/${await find(css)}/value`, { text: value });
  const textOrEmpty = (css) => text(css).catch(() => '');

  async function screenshot(name, scrollTo) {
    if (scrollTo) {
      await webdriver('POST', `/session/${at.session}/execute/sync`, { script: 'document.querySelector(arguments[0]).scrollIntoView()', args: [scrollTo] });
    }
    mkdirSync(artifacts, { recursive: true });
    const png = await webdriver('GET', `/session/${at.session}/screenshot`);
    writeFileSync(join(artifacts, `${name}.png`), Buffer.from(png, 'base64'));
  }

  return { at, webdriver, find, text, click, clear, type, textOrEmpty, screenshot };
}
