/**
 * Nested API payloads end to end: posts from the social API emulator (nested author and
 * metrics objects, a media array, hashtags) land in bronze through the REST source, and the
 * silver step produces a flat parent table plus child tables linked by parent id and index.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { SocialApiEmulator } from '../src/emulate/social-api.js';
import { projectWithSources, TestProject } from './support/project.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

describe('silver on nested API payloads', () => {
  it('posts with nested author, metrics, media[] and hashtags[] become flat parent and linked child tables', async () => {
    const emulator = await SocialApiEmulator.start({ seed: 5, posts: 120 });
    cleanups.push(() => emulator.close());
    const p = await TestProject.withSources({});
    cleanups.push(() => p.dispose());
    const config = projectWithSources(
      {
        social: {
          type: 'rest',
          base_url: emulator.url,
          auth: {
            type: 'oauth2_client_credentials',
            token_url: '/oauth/token',
            client_id: emulator.clientId,
            client_secret: emulator.clientSecret,
          },
          resources: {
            posts: {
              params: { limit: 50 },
              records: '$.data',
              paginator: {
                type: 'cursor',
                cursor_path: '$.paging.next_cursor',
                param: 'cursor',
                has_more_path: '$.paging.has_more',
              },
              primary_key: ['id'],
            },
          },
        },
      },
      { raw: false },
    );
    const pipeline = (config['pipelines'] as Record<string, Record<string, unknown>>)['p'] as Record<string, unknown>;
    pipeline['silver'] = {
      posts: {
        from: 'posts',
        primary_key: ['id'],
        dedup: { sort_by: 'updated_at' },
        columns: {
          created_at: { type: 'TIMESTAMPTZ' },
          updated_at: { type: 'TIMESTAMPTZ' },
          author__handle: { pii: 'name', mask: 'hash' },
        },
        derive: {
          engagement_rate: '(metrics__likes + metrics__comments + metrics__shares) / nullif(metrics__views, 0)',
        },
        children: { caption_tags: { expression: "regexp_extract_all(caption, '#(\\w+)', 1)", column: 'tag' } },
        checks: [
          { type: 'not_null', columns: ['id', 'created_at'] },
          { type: 'unique', column: 'id' },
          { type: 'range', column: 'metrics__views', min: 0 },
        ],
      },
    };
    config['privacy'] = { salt: 'api-test-salt-0123456789' };
    await p.write('dip.yaml', `${JSON.stringify(config, null, 2)}\n`);
    await p.reopen();
    await p.runOk();

    const expected = emulator.data.allPosts();
    assert.equal(await p.count('silver.posts'), expected.length);
    const cols = (await p.rows(`describe silver.posts`)).map((r) => String(r['column_name']));
    for (const c of [
      'author__id',
      'author__handle',
      'author__followers',
      'metrics__views',
      'metrics__likes',
      'engagement_rate',
      '_dip_id',
      '_dip_first_seen',
      '_dip_last_seen',
    ]) {
      assert.ok(cols.includes(c), `silver.posts has ${c} (columns: ${cols.join(', ')})`);
    }
    assert.ok(
      !cols.includes('media') && !cols.includes('hashtags') && !cols.includes('author'),
      'arrays and objects are not left nested',
    );

    // Children: exact rows, linked by parent id (md5 of the key) and 0-based list index.
    const media = await p.rows(
      `select _dip_parent_id as pid, _dip_list_idx as idx, type, url from silver.posts__media order by pid, idx`,
    );
    const expectedMedia = expected.flatMap((post) => post.media.map((m, i) => [md5(post.id), i, m.type, m.url]));
    assert.deepEqual(
      media.map((m) => [m['pid'], Number(m['idx']), m['type'], m['url']]),
      expectedMedia.sort((a, b) => String(a[0]).localeCompare(String(b[0])) || Number(a[1]) - Number(b[1])),
    );
    const hashtags = await p.rows(
      `select p.id, h._dip_list_idx as idx, h.value from silver.posts__hashtags h join silver.posts p on p._dip_id = h._dip_parent_id`,
    );
    assert.equal(
      hashtags.length,
      expected.reduce((n, post) => n + post.hashtags.length, 0),
    );
    const byPost = new Map(expected.map((post) => [post.id, post]));
    for (const h of hashtags) assert.equal(byPost.get(String(h['id']))?.hashtags[Number(h['idx'])], h['value']);
    // Tags extracted from captions into a derived child table.
    const tags = await p.rows(
      `select p.id, t.tag from silver.posts__caption_tags t join silver.posts p on p._dip_id = t._dip_parent_id`,
    );
    const expectedTags = expected.reduce((n, post) => n + [...post.caption.matchAll(/#(\w+)/g)].length, 0);
    assert.equal(tags.length, expectedTags);

    // Derived column and mask, exact.
    const sample = expected[7];
    assert.ok(sample);
    const row = (await p.rows(`select engagement_rate, author__handle from silver.posts where id = '${sample.id}'`))[0];
    const m = sample.metrics;
    assert.equal(row?.['engagement_rate'], m.views ? (m.likes + m.comments + m.shares) / m.views : null);
    assert.equal(
      row?.['author__handle'],
      createHash('sha256').update(`api-test-salt-0123456789${sample.author.handle}`).digest('hex'),
    );
  });
});
